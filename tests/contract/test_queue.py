"""The durable queue every ``Store`` must provide, run against SQLite and PostgreSQL.

Times are passed explicitly (epoch milliseconds) so lease expiry is tested without sleeping.
"""

from __future__ import annotations

import sqlalchemy

from lambdalite.store.base import Ack, NewMessage, Retry, Store
from lambdalite.store.tables import SCHEMA_VERSION

from .conftest import StoreBackend
from .test_store import race

T = 1_700_000_000_000  # a fixed "now"
LEASE = 30_000


def msg(queue: str, n: int, **kw: int) -> NewMessage:
    return NewMessage(queue, {"n": n, "text": "ü✓"}, payload=f'{{"n": {n}}}'.encode(), **kw)


def test_enqueue_returns_increasing_ids_and_claim_round_trips(store: Store) -> None:
    ids = store.enqueue([msg("a", 1), msg("a", 2)], now=T)
    more = store.enqueue([msg("b", 3)], now=T + 1)
    assert ids[0] < ids[1] < more[0]
    claimed = store.claim("me", 10, LEASE, now=T + 5)
    assert [m.id for m in claimed] == [*ids, *more]
    first = claimed[0]
    assert (first.queue, first.body, first.payload) == ("a", {"n": 1, "text": "ü✓"}, b'{"n": 1}')
    assert first.enqueued_at == T and first.deliveries == 1


def test_claim_respects_due_time_limit_and_order(store: Store) -> None:
    late = store.enqueue([msg("q", 1, due_at=T + 1000)], now=T)[0]
    early = store.enqueue([msg("q", 2), msg("q", 3), msg("q", 4)], now=T + 10)
    assert [m.id for m in store.claim("me", 2, LEASE, now=T + 20)] == early[:2]
    assert [m.id for m in store.claim("me", 10, LEASE, now=T + 999)] == early[2:]
    assert [m.id for m in store.claim("me", 10, LEASE, now=T + 1000)] == [late]
    assert store.claim("me", 10, LEASE, now=T + 1001) == []
    assert store.claim("me", 0, LEASE, now=T + 1001) == []


def test_a_live_lease_hides_the_message_and_an_expired_one_does_not(store: Store) -> None:
    (mid,) = store.enqueue([msg("q", 1)], now=T)
    assert [m.id for m in store.claim("one", 5, LEASE, now=T)] == [mid]
    assert store.claim("two", 5, LEASE, now=T + LEASE - 1) == []
    again = store.claim("two", 5, LEASE, now=T + LEASE)
    assert [(m.id, m.deliveries) for m in again] == [(mid, 2)]
    # The first owner lost it: its ack does nothing and its follow-ups are not enqueued.
    assert store.ack("one", [Ack(mid, [msg("f", 9)])]) == set()
    assert store.ack("two", [Ack(mid)]) == {mid}
    assert store.claim("three", 5, LEASE, now=T + 10 * LEASE) == []


def test_renew_extends_every_lease_of_the_owner(store: Store) -> None:
    store.enqueue([msg("q", 1), msg("q", 2), msg("q", 3)], now=T)
    mine = store.claim("me", 2, LEASE, now=T)
    store.claim("other", 1, LEASE, now=T)
    assert store.renew("me", LEASE, now=T + LEASE - 1) == 2
    assert store.claim("thief", 5, LEASE, now=T + LEASE + 1) != []  # only "other"'s expired
    assert store.claim("thief", 5, LEASE, now=T + 2 * LEASE - 2) == []
    assert [m.id for m in store.claim("thief", 5, LEASE, now=T + 2 * LEASE)] == [m.id for m in mine]


def test_renew_can_be_limited_to_some_messages(store: Store) -> None:
    ids = store.enqueue([msg("q", 1), msg("q", 2)], now=T)
    store.claim("me", 5, LEASE, now=T)
    assert store.renew("me", LEASE, ids=[ids[1]], now=T + 1000) == 1
    assert store.renew("other", LEASE, ids=ids, now=T + 1000) == 0
    assert store.renew("me", LEASE, ids=[], now=T + 1000) == 0
    assert [m.id for m in store.claim("next", 5, LEASE, now=T + LEASE)] == [ids[0]]


def test_ack_deletes_and_enqueues_follow_ups_atomically(store: Store) -> None:
    ids = store.enqueue([msg("q", 1), msg("q", 2)], now=T)
    store.claim("me", 5, LEASE, now=T)
    done = store.ack("me", [Ack(ids[0], [msg("dest", 10), msg("dest", 11)]), Ack(ids[1])])
    assert done == set(ids)
    follow = store.claim("me", 5, LEASE)
    assert [(m.queue, m.body["n"]) for m in follow] == [("dest", 10), ("dest", 11)]
    assert store.ack("me", []) == set()
    assert store.ack("me", [Ack(ids[0])]) == set()  # already gone


def test_reschedule_returns_the_message_with_a_new_body_and_due_time(store: Store) -> None:
    (mid,) = store.enqueue([msg("q", 1)], now=T)
    store.claim("me", 1, LEASE, now=T)
    assert store.reschedule("other", [Retry(mid, T + 50, {"n": 0})]) == set()
    assert store.reschedule("me", [Retry(mid, T + 500, {"n": 1, "attempt": 2})]) == {mid}
    assert store.claim("me", 1, LEASE, now=T + 499) == []
    (back,) = store.claim("me", 1, LEASE, now=T + 500)
    assert back.body == {"n": 1, "attempt": 2}
    assert back.payload == b'{"n": 1}' and back.enqueued_at == T and back.deliveries == 2
    # Rescheduling gives the lease up: renewing no longer touches it.
    store.reschedule("me", [Retry(mid, T + 600, back.body)])
    assert store.renew("me", LEASE, now=T + 600) == 0


def test_release_makes_held_messages_claimable_at_once(store: Store) -> None:
    ids = store.enqueue([msg("q", 1), msg("q", 2)], now=T)
    store.claim("me", 5, LEASE, now=T)
    assert store.release("me", now=T + 1) == 2
    assert [m.id for m in store.claim("next", 5, LEASE, now=T + 1)] == ids


def test_queue_stats_and_purge(store: Store) -> None:
    assert store.queue_stats(now=T) == []
    store.enqueue([msg("a", 1)], now=T)
    store.enqueue([msg("a", 2), msg("b", 3)], now=T + 100)
    store.enqueue([NewMessage("b", {}, enqueued_at=T - 5000)], now=T + 100)
    store.claim("me", 1, LEASE, now=T + 200)
    stats = {s.queue: s for s in store.queue_stats(now=T + 300)}
    assert (stats["a"].depth, stats["a"].claimed, stats["a"].oldest_enqueued_at) == (2, 1, T)
    assert (stats["b"].depth, stats["b"].claimed, stats["b"].oldest_enqueued_at) == (
        2,
        0,
        T - 5000,
    )
    # An expired lease no longer counts as claimed.
    assert {s.queue: s.claimed for s in store.queue_stats(now=T + 200 + LEASE)}["a"] == 0
    assert store.purge("a") == 2
    assert [s.queue for s in store.queue_stats(now=T)] == ["b"]


def test_racing_claims_never_hand_out_a_message_twice(store_backend: StoreBackend) -> None:
    writer = store_backend.open()
    ids = writer.enqueue([msg("q", n) for n in range(200)])
    stores = [store_backend.open() for _ in range(4)]

    def drain(index: int) -> list[int]:
        got: list[int] = []
        while batch := stores[index].claim(f"owner-{index}", 7, LEASE):
            got += [m.id for m in batch]
        return got

    results = race(4, drain)
    claimed = [i for r in results if isinstance(r, list) for i in r]
    assert not [r for r in results if isinstance(r, BaseException)]
    assert sorted(claimed) == ids


def test_messages_and_leases_survive_reopen(store_backend: StoreBackend) -> None:
    store = store_backend.open()
    kept = store.enqueue([msg("q", 1), msg("q", 2)], now=T)
    store.claim("crashed", 1, LEASE, now=T)
    store.close()
    reopened = store_backend.open()
    # The unclaimed message is ready now; the one a dead owner held, once its lease ran out.
    assert [m.id for m in reopened.claim("new", 5, LEASE, now=T + 1)] == [kept[1]]
    assert [m.id for m in reopened.claim("new", 5, LEASE, now=T + LEASE)] == [kept[0]]


def test_a_version_1_database_gains_the_queue(store_backend: StoreBackend) -> None:
    store = store_backend.open()
    store.put("function", "fn", {"kept": True})
    engine = store._engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("DROP TABLE queue_messages"))
        conn.execute(sqlalchemy.text("UPDATE schema_version SET version = 1"))
    store.close()
    upgraded = store_backend.open()
    doc = upgraded.get("function", "fn")
    assert doc is not None and doc.data == {"kept": True}
    assert upgraded.enqueue([msg("q", 1)]) != []
    with upgraded._engine.connect() as conn:  # type: ignore[attr-defined]
        version = conn.execute(sqlalchemy.text("SELECT version FROM schema_version")).scalar()
    assert version == SCHEMA_VERSION
