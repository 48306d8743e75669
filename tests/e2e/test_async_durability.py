"""No accepted asynchronous event is lost when the server is killed, on SQLite and PostgreSQL.

10,000 events go to a function that records each request id in a file; the server is killed
with SIGKILL once half of them were accepted (while it is both accepting and delivering),
restarted on the same data, and every event whose 202 arrived must then have run at least
once. Events the dead server held under a lease come back once the (short) lease runs out.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.asyncload import queue_depth, run_with_crash

EVENTS = 10_000


def test_sigkill_loses_no_accepted_event(tmp_path: Path, fresh_store_url: str | None) -> None:
    record = tmp_path / "ran.txt"
    result, seen, servers = run_with_crash(
        tmp_path / "data",
        fresh_store_url,
        record,
        count=EVENTS,
        kill_after=EVENTS // 2,
        sandbox="process",
        memory_enforcement="off",
        async_workers=8,
        async_lease=2,
        keep_alive=30,
    )
    try:
        accepted = set(result.accepted)
        assert result.killed
        assert len(result.accepted) == EVENTS == len(accepted)
        missing = accepted - set(seen)
        assert not missing, f"{len(missing)} accepted events never ran"
        # At-least-once: events in flight when the server died may have run twice.
        duplicates = sum(n - 1 for rid, n in seen.items() if rid in accepted)
        assert queue_depth(servers[-1]) == 0
        print(
            f"accepted {len(accepted)}, ran {len(accepted & set(seen))}, "
            f"duplicates {duplicates}, unconfirmed sends {result.unconfirmed}"
        )
    finally:
        assert servers[-1].stop() == 0, servers[-1].output()
