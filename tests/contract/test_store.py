"""The behaviour every ``Store`` implementation must show, run against each backend."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from lambdalite.store.base import (
    Document,
    DocumentExists,
    Expect,
    LogEvent,
    RevisionMismatch,
    Store,
)

from .conftest import StoreBackend

T = TypeVar("T")


def race(count: int, action: Callable[[int], T]) -> list[T | BaseException]:
    """Run ``action(i)`` in ``count`` threads released together; results or raised errors."""
    barrier = threading.Barrier(count)
    results: list[T | BaseException] = [RuntimeError("not run")] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = action(index)
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a racing call never returned"
    return results


def events(group: str, stream: str, *messages: str, t0: int = 1000) -> list[LogEvent]:
    return [LogEvent(group, stream, t0 + i, m) for i, m in enumerate(messages)]


# -- documents -------------------------------------------------------------------------


def test_put_then_get_round_trips_data(store: Store) -> None:
    data: dict[str, Any] = {
        "Runtime": "python3.12",
        "MemorySize": 128,
        "Env": {"Variables": {"A": "ü✓ 日本"}},
        "Layers": [],
        "Ratio": 0.5,
        "Flag": None,
    }
    written = store.put("function", "fn", data)
    got = store.get("function", "fn")
    assert got == Document("function", "fn", "", data, written.revision)
    assert written.data == data


def test_returned_data_is_not_the_callers_object(store: Store) -> None:
    data = {"a": [1]}
    written = store.put("function", "fn", data)
    data["a"].append(2)
    assert written.data == {"a": [1]}
    got = store.get("function", "fn")
    assert got is not None
    got.data["a"].append(3)
    again = store.get("function", "fn")
    assert again is not None and again.data == {"a": [1]}


def test_get_missing_is_none(store: Store) -> None:
    store.put("function", "fn", {})
    assert store.get("function", "other") is None
    assert store.get("alias", "fn") is None


def test_list_orders_by_key_code_point_and_separates_kinds(store: Store) -> None:
    for key in ["b", "a_b", "B", "a-b", "é", "a"]:
        store.put("function", key, {"k": key})
    store.put("alias", "zzz", {})
    keys = [d.key for d in store.list("function")]
    assert keys == ["B", "a", "a-b", "a_b", "b", "é"]
    assert [d.data["k"] for d in store.list("function")] == keys
    assert [d.key for d in store.list("alias")] == ["zzz"]
    assert store.list("version") == []


def test_list_filters_by_parent(store: Store) -> None:
    store.put("version", "fn:2", {"v": 2}, parent="fn")
    store.put("version", "fn:1", {"v": 1}, parent="fn")
    store.put("version", "other:1", {"v": 1}, parent="other")
    store.put("alias", "fn:live", {}, parent="fn")
    listed = store.list("version", parent="fn")
    assert [(d.key, d.parent, d.data) for d in listed] == [
        ("fn:1", "fn", {"v": 1}),
        ("fn:2", "fn", {"v": 2}),
    ]
    assert [d.key for d in store.list("version")] == ["fn:1", "fn:2", "other:1"]
    assert store.list("version", parent="nobody") == []


def test_put_absent_creates_once(store: Store) -> None:
    first = store.put("function", "fn", {"n": 1}, expect=Expect.ABSENT)
    with pytest.raises(DocumentExists):
        store.put("function", "fn", {"n": 2}, expect=Expect.ABSENT)
    assert store.get("function", "fn") == first
    # The same key under another kind is a different document.
    store.put("alias", "fn", {}, expect=Expect.ABSENT)


def test_put_any_upserts_and_moves_parent(store: Store) -> None:
    store.put("version", "fn:1", {"n": 1}, parent="fn")
    store.put("version", "fn:1", {"n": 2}, parent="fn2")
    got = store.get("version", "fn:1")
    assert got is not None and (got.data, got.parent) == ({"n": 2}, "fn2")
    assert store.list("version", parent="fn") == []


def test_put_with_matching_revision_succeeds(store: Store) -> None:
    first = store.put("function", "fn", {"n": 1})
    second = store.put("function", "fn", {"n": 2}, expect=first.revision)
    assert second.revision != first.revision
    assert store.get("function", "fn") == second


def test_put_with_stale_revision_fails_and_keeps_data(store: Store) -> None:
    first = store.put("function", "fn", {"n": 1})
    second = store.put("function", "fn", {"n": 2})
    with pytest.raises(RevisionMismatch):
        store.put("function", "fn", {"n": 3}, expect=first.revision)
    assert store.get("function", "fn") == second


def test_put_with_revision_on_missing_document_fails(store: Store) -> None:
    with pytest.raises(RevisionMismatch):
        store.put("function", "ghost", {}, expect="0f7d5f8e-0000-4000-8000-000000000000")
    assert store.get("function", "ghost") is None


def test_every_write_gets_a_new_revision(store: Store) -> None:
    revisions = [store.put("function", "fn", {"n": 1}).revision for _ in range(5)]
    current = store.get("function", "fn")
    assert len(set(revisions)) == 5
    assert current is not None and current.revision == revisions[-1]


def test_delete_unconditional(store: Store) -> None:
    store.put("function", "fn", {})
    assert store.delete("function", "fn") is True
    assert store.get("function", "fn") is None
    assert store.delete("function", "fn") is False


def test_delete_with_revision(store: Store) -> None:
    first = store.put("function", "fn", {"n": 1})
    second = store.put("function", "fn", {"n": 2})
    with pytest.raises(RevisionMismatch):
        store.delete("function", "fn", expect=first.revision)
    assert store.get("function", "fn") == second
    assert store.delete("function", "fn", expect=second.revision) is True
    assert store.get("function", "fn") is None
    with pytest.raises(RevisionMismatch):
        store.delete("function", "fn", expect=second.revision)


def test_delete_children_removes_every_kind_under_parent(store: Store) -> None:
    store.put("function", "fn", {})
    store.put("version", "fn:1", {}, parent="fn")
    store.put("version", "fn:2", {}, parent="fn")
    store.put("alias", "fn:live", {}, parent="fn")
    store.put("version", "fn2:1", {}, parent="fn2")
    assert store.delete_children("fn") == 3
    assert store.list("version") == [store.get("version", "fn2:1")]
    assert store.list("alias") == []
    assert store.get("function", "fn") is not None
    assert store.delete_children("fn") == 0


def test_delete_children_refuses_the_empty_parent(store: Store) -> None:
    store.put("function", "fn", {})
    with pytest.raises(ValueError):
        store.delete_children("")
    assert store.get("function", "fn") is not None


def test_documents_and_logs_survive_reopen(store_backend: StoreBackend) -> None:
    store = store_backend.open()
    doc = store.put("function", "fn", {"Handler": "app.handler"})
    store.append_logs(events("/aws/lambda/fn", "s1", "hello", "world"))
    last_id = store.get_log_events("/aws/lambda/fn", "s1")[-1].id
    store.close()

    reopened = store_backend.open()
    assert reopened.get("function", "fn") == doc
    assert [e.message for e in reopened.get_log_events("/aws/lambda/fn", "s1")] == [
        "hello",
        "world",
    ]
    reopened.delete_logs("/aws/lambda/fn")
    reopened.append_logs(events("/aws/lambda/fn", "s1", "again"))
    # Ids are pagination tokens: never reused, even after the events are gone.
    assert reopened.get_log_events("/aws/lambda/fn", "s1")[0].id > last_id


def test_racing_updates_with_the_same_revision_have_one_winner(store: Store) -> None:
    base = store.put("function", "fn", {"writer": -1})
    results = race(8, lambda i: store.put("function", "fn", {"writer": i}, expect=base.revision))
    winners = [r for r in results if isinstance(r, Document)]
    losers = [r for r in results if isinstance(r, RevisionMismatch)]
    assert len(winners) == 1 and len(losers) == 7
    assert store.get("function", "fn") == winners[0]


def test_racing_creates_have_one_winner(store: Store) -> None:
    results = race(8, lambda i: store.put("function", "fn", {"w": i}, expect=Expect.ABSENT))
    winners = [r for r in results if isinstance(r, Document)]
    assert len(winners) == 1
    assert sum(isinstance(r, DocumentExists) for r in results) == 7
    assert store.get("function", "fn") == winners[0]


# -- logs ------------------------------------------------------------------------------


def test_append_and_get_in_order_with_increasing_ids(store: Store) -> None:
    store.append_logs(events("g", "s", "one", "two", "three"))
    store.append_logs([LogEvent("g", "s", 5, "late-but-later", ingestion_time=42)])
    got = store.get_log_events("g", "s")
    assert [e.message for e in got] == ["one", "two", "three", "late-but-later"]
    assert [e.timestamp for e in got] == [1000, 1001, 1002, 5]
    ids = [e.id for e in got]
    assert ids == sorted(set(ids))
    assert all(e.group == "g" and e.stream == "s" for e in got)
    assert all(e.ingestion_time > 0 for e in got[:3])
    assert got[3].ingestion_time == 42


def test_append_nothing_is_a_no_op(store: Store) -> None:
    store.append_logs([])
    assert store.list_log_groups() == []


def test_get_filters_by_time_range_start_inclusive_end_exclusive(store: Store) -> None:
    store.append_logs(events("g", "s", "a", "b", "c", "d", t0=100))
    assert [e.message for e in store.get_log_events("g", "s", start=101)] == ["b", "c", "d"]
    assert [e.message for e in store.get_log_events("g", "s", end=102)] == ["a", "b"]
    got = store.get_log_events("g", "s", start=101, end=103)
    assert [e.message for e in got] == ["b", "c"]


def test_get_paginates_with_after_and_before_id(store: Store) -> None:
    store.append_logs(events("g", "s", *[f"m{i}" for i in range(10)]))
    store.append_logs(events("g", "other", "x"))
    seen: list[str] = []
    after = 0
    while page := store.get_log_events("g", "s", after_id=after, limit=3):
        seen += [e.message for e in page]
        after = page[-1].id
    assert seen == [f"m{i}" for i in range(10)]
    all_ids = [e.id for e in store.get_log_events("g", "s")]
    before = store.get_log_events("g", "s", before_id=all_ids[3])
    assert [e.message for e in before] == ["m0", "m1", "m2"]


def test_get_newest_first_keeps_the_newest(store: Store) -> None:
    store.append_logs(events("g", "s", *[f"m{i}" for i in range(6)]))
    got = store.get_log_events("g", "s", newest_first=True, limit=2)
    assert [e.message for e in got] == ["m5", "m4"]
    older = store.get_log_events("g", "s", newest_first=True, limit=2, before_id=got[-1].id)
    assert [e.message for e in older] == ["m3", "m2"]


def test_filter_across_streams_in_id_order(store: Store) -> None:
    store.append_logs(events("g", "2024/01/01/[$LATEST]a", "START one"))
    store.append_logs(events("g", "2024/01/02/[$LATEST]b", "START two"))
    store.append_logs(events("g", "2024/01/01/[$LATEST]a", "END one"))
    store.append_logs(events("other", "2024/01/01/[$LATEST]a", "START elsewhere"))
    assert [e.message for e in store.filter_log_events("g")] == [
        "START one",
        "START two",
        "END one",
    ]
    picked = store.filter_log_events("g", ["2024/01/02/[$LATEST]b"])
    assert [e.message for e in picked] == ["START two"]
    assert store.filter_log_events("g", []) == []
    by_prefix = store.filter_log_events("g", stream_prefix="2024/01/01/")
    assert [e.message for e in by_prefix] == ["START one", "END one"]
    # LIKE wildcards in the prefix are plain characters.
    assert store.filter_log_events("g", stream_prefix="2024_01") == []


def test_filter_contains_terms_must_all_match_case_sensitively(store: Store) -> None:
    store.append_logs(
        events("g", "s", "ERROR disk full", "error disk ok", "ERROR net down", "100% done")
    )
    assert [e.message for e in store.filter_log_events("g", contains=["ERROR"])] == [
        "ERROR disk full",
        "ERROR net down",
    ]
    got = store.filter_log_events("g", contains=["ERROR", "disk"])
    assert [e.message for e in got] == ["ERROR disk full"]
    assert [e.message for e in store.filter_log_events("g", contains=["%"])] == ["100% done"]


def test_filter_time_range_pagination_and_limit(store: Store) -> None:
    store.append_logs(events("g", "a", *[f"a{i}" for i in range(5)], t0=0))
    store.append_logs(events("g", "b", *[f"b{i}" for i in range(5)], t0=0))
    ranged = store.filter_log_events("g", start=1, end=3)
    assert [e.message for e in ranged] == ["a1", "a2", "b1", "b2"]
    first = store.filter_log_events("g", limit=4)
    rest = store.filter_log_events("g", after_id=first[-1].id)
    assert [e.message for e in first + rest] == [f"a{i}" for i in range(5)] + [
        f"b{i}" for i in range(5)
    ]


def test_list_streams_reports_ranges_and_sizes(store: Store) -> None:
    store.append_logs(
        [
            LogEvent("g", "s2", 50, "é", ingestion_time=70),
            LogEvent("g", "s1", 30, "abc", ingestion_time=60),
            LogEvent("g", "s1", 10, "de", ingestion_time=65),
            LogEvent("h", "s1", 1, "x"),
        ]
    )
    infos = store.list_log_streams("g")
    assert [(i.group, i.stream) for i in infos] == [("g", "s1"), ("g", "s2")]
    s1, s2 = infos
    assert (s1.first_event, s1.last_event, s1.last_ingestion) == (10, 30, 65)
    assert s1.stored_bytes == 5
    assert s2.stored_bytes == 2  # UTF-8 bytes, not characters
    assert [i.stream for i in store.list_log_streams("g", prefix="s2")] == ["s2"]
    assert store.list_log_streams("nobody") == []


def test_list_groups_sorted_with_prefix(store: Store) -> None:
    for group in ["/aws/lambda/b", "/aws/lambda/a", "/custom/x"]:
        store.append_logs(events(group, "s", "m"))
    assert store.list_log_groups() == ["/aws/lambda/a", "/aws/lambda/b", "/custom/x"]
    assert store.list_log_groups(prefix="/aws/") == ["/aws/lambda/a", "/aws/lambda/b"]
    assert store.list_log_groups(prefix="/AWS/") == []


def test_delete_logs_removes_one_group(store: Store) -> None:
    store.append_logs(events("g", "s1", "a", "b") + events("g", "s2", "c"))
    store.append_logs(events("keep", "s1", "d"))
    assert store.delete_logs("g") == 3
    assert store.get_log_events("g", "s1") == []
    assert store.list_log_groups() == ["keep"]
    assert store.delete_logs("g") == 0


def test_unicode_and_large_messages_round_trip(store: Store) -> None:
    big = ("0123456789abcdef" * 16384)[: 256 * 1024]
    texts = ["naïve 日本語 🚀 \t tab\nnewline", big, "quote ' and \" and \\ backslash"]
    store.append_logs(events("g", "s", *texts))
    assert [e.message for e in store.get_log_events("g", "s")] == texts
    assert len(store.get_log_events("g", "s")[1].message) == 262144


def test_nul_characters_are_replaced(store: Store) -> None:
    store.append_logs(events("g", "s", "a\x00b"))
    assert [e.message for e in store.get_log_events("g", "s")] == ["a\ufffdb"]


def test_concurrent_appends_from_threads(store: Store) -> None:
    def write(i: int) -> None:
        for batch in range(5):
            store.append_logs(events("g", f"s{i}", *[f"{i}-{batch}-{n}" for n in range(4)]))

    results = race(6, write)
    assert results == [None] * 6
    everything = store.filter_log_events("g")
    assert len(everything) == 6 * 5 * 4
    assert len({e.id for e in everything}) == len(everything)
    for i in range(6):
        mine = [e.message for e in everything if e.stream == f"s{i}"]
        assert mine == [f"{i}-{b}-{n}" for b in range(5) for n in range(4)]
