"""Durable asynchronous queue: enqueue rate, drain rate, and no loss across SIGKILL.

Three measurements against real servers on a scratch data directory (SQLite by default,
``--database-url postgresql://...`` for PostgreSQL; a fresh schema is created and dropped):

1. **enqueue**: a server that only accepts events (``async_workers=0``) takes ``--events``
   ``Event`` invocations from ``--connections`` kept-alive connections of a minimal asyncio
   HTTP client; every 202 means the event was committed.
2. **drain**: that server stops, one that delivers (``--workers``) starts on the same data and
   runs every queued event through a function that appends its request id to a file.
3. **crash**: the no-loss scenario of ``tests/e2e/test_async_durability.py``: events are sent
   while the server delivers them, it is killed with SIGKILL halfway, restarted, and every
   accepted event must have run; duplicates (events in flight at the kill) are counted.

Usage: .venv/bin/python bench/async_queue.py [--events 10000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.e2e.asyncload import create_recorder, run_with_crash
from tests.e2e.harness import ServerProcess

SERVER = {"sandbox": "process", "memory_enforcement": "off", "keep_alive": 60}


async def _connection(port: int, request: bytes, count: list[int], accepted: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while count[0] > 0:
            count[0] -= 1
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            headers = {k.lower(): v for k, v in headers.items()}
            await reader.readexactly(int(headers.get("content-length", "0")))
            if status != 202:
                raise RuntimeError(f"unexpected status {status}")
            accepted.append(headers["x-amzn-requestid"])
    finally:
        writer.close()


async def _blast(port: int, name: str, events: int, connections: int) -> list[str]:
    body = json.dumps({"bench": True}).encode()
    request = (
        f"POST /2015-03-31/functions/{name}/invocations HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\nX-Amz-Invocation-Type: Event\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    remaining, accepted = [events], []
    await asyncio.gather(
        *(_connection(port, request, remaining, accepted) for _ in range(connections))
    )
    return accepted


def figures(server: ServerProcess) -> dict[str, int]:
    account = httpx.get(f"{server.endpoint}/_lambdalite/stats", timeout=10).json()["account"]
    return {"depth": account["asyncQueueDepth"], "commits": account["asyncQueueCommits"]}


def enqueue_and_drain(
    scratch: Path, url: str | None, events: int, connections: int, workers: int
) -> None:
    record = scratch / "drain.txt"
    data = scratch / "drain"
    acceptor = ServerProcess(data, url, async_workers=0, **SERVER).start()
    try:
        create_recorder(acceptor, "sink", record)
        start = time.perf_counter()
        accepted = asyncio.run(_blast(acceptor.port, "sink", events, connections))
        took = time.perf_counter() - start
        commits = figures(acceptor)["commits"]
    finally:
        acceptor.stop()
    print(
        f"enqueue: {len(accepted)} events in {took:.2f} s = {len(accepted) / took:,.0f} events/s "
        f"({connections} connections, {len(accepted) / max(commits, 1):.1f} events per commit)"
    )
    start = time.perf_counter()
    drainer = ServerProcess(data, url, async_workers=workers, **SERVER).start()
    try:
        wanted = set(accepted)
        while True:
            lines = record.read_text().splitlines() if record.exists() else []
            if wanted <= set(lines):
                break
            time.sleep(0.05)
        took = time.perf_counter() - start
        assert figures(drainer)["depth"] == 0
    finally:
        drainer.stop()
    print(
        f"drain:   {len(accepted)} events in {took:.2f} s = {len(accepted) / took:,.0f} events/s "
        f"({workers} workers, server start included)"
    )


def crash(scratch: Path, url: str | None, events: int, workers: int) -> None:
    record = scratch / "crash.txt"
    start = time.perf_counter()
    result, seen, servers = run_with_crash(
        scratch / "crash",
        url,
        record,
        count=events,
        kill_after=events // 2,
        async_workers=workers,
        async_lease=2,
        **SERVER,
    )
    took = time.perf_counter() - start
    servers[-1].stop()
    accepted = set(result.accepted)
    ran = accepted & set(seen)
    duplicates = sum(n - 1 for rid, n in seen.items() if rid in accepted)
    print(
        f"crash:   accepted {len(accepted)}, ran {len(ran)}, lost {len(accepted - ran)}, "
        f"duplicates {duplicates}, sends cut off by the kill {result.unconfirmed} "
        f"({took:.1f} s, SIGKILL after {events // 2} accepted)"
    )


@contextlib.contextmanager
def database(url: str | None) -> Iterator[str | None]:
    if not url or not url.startswith("postgres"):
        yield url
        return
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--database-url", help="default: SQLite in the scratch directory")
    parser.add_argument("--skip-crash", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with tempfile.TemporaryDirectory() as tmp, database(args.database_url) as url:
        scratch = Path(tmp)
        print(f"store: {'SQLite' if not url else 'PostgreSQL'}, {args.events} events")
        enqueue_and_drain(scratch, url, args.events, args.connections, args.workers)
        if not args.skip_crash:
            crash(scratch, url, args.events, args.workers)


if __name__ == "__main__":
    main()
