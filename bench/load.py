"""Closed-loop load: N clients, one kept-alive connection each, for a bounded time.

Each client sends its next request as soon as the previous answer arrived, so N is the
number of requests in flight. A first round (one request per client, all at once) makes the
server create every environment it needs, then a warm-up period runs unmeasured, then only
requests sent and answered inside the measured window count.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from bench.httpclient import AsyncHttpConnection, HttpError
from bench.stats import summarize


@dataclass
class LoadResult:
    concurrency: int
    seconds: float
    completed: int = 0
    errors: int = 0  # non-200 other than throttles, function errors, broken connections
    throttles: int = 0  # HTTP 429
    latencies_ms: list[float] = field(default_factory=list)
    first_error: str = ""

    @property
    def per_second(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def values(self) -> dict[str, Any]:
        lat = summarize(self.latencies_ms)
        return {
            "per_second": round(self.per_second, 1),
            "concurrency": self.concurrency,
            "seconds": self.seconds,
            "completed": self.completed,
            "errors": self.errors,
            "throttles": self.throttles,
            "p50_ms": lat.get("p50_ms"),
            "p99_ms": lat.get("p99_ms"),
            "n": lat.get("n", 0),
        }


def closed_loop(
    port: int, raw_request: bytes, concurrency: int, warmup_s: float, seconds: float
) -> LoadResult:
    return asyncio.run(_closed_loop(port, raw_request, concurrency, warmup_s, seconds))


async def _closed_loop(
    port: int, raw: bytes, concurrency: int, warmup_s: float, seconds: float
) -> LoadResult:
    result = LoadResult(concurrency, seconds)
    conns = [AsyncHttpConnection("127.0.0.1", port) for _ in range(concurrency)]
    try:
        await asyncio.gather(*(_prime(conn, raw) for conn in conns))
        loop = asyncio.get_running_loop()
        begin = loop.time() + warmup_s
        end = begin + seconds
        await asyncio.gather(*(_client(conn, raw, begin, end, result) for conn in conns))
    finally:
        await asyncio.gather(*(conn.close() for conn in conns))
    return result


async def _prime(conn: AsyncHttpConnection, raw: bytes) -> None:
    with contextlib.suppress(HttpError):  # counted in the measured window if it persists
        await conn.send(raw)


async def _client(
    conn: AsyncHttpConnection, raw: bytes, begin: float, end: float, result: LoadResult
) -> None:
    loop = asyncio.get_running_loop()
    while True:
        sent = loop.time()
        if sent >= end:
            return
        start = time.perf_counter()
        try:
            response = await conn.send(raw)
            status, error = response.status, response.headers.get("x-amz-function-error")
        except HttpError as exc:
            status, error = 0, str(exc)
        done = loop.time()
        if sent < begin or done > end:
            continue
        if status == 200 and not error:
            result.completed += 1
            result.latencies_ms.append((time.perf_counter() - start) * 1000)
        elif status == 429:
            result.throttles += 1
        else:
            result.errors += 1
            result.first_error = result.first_error or f"HTTP {status} {error or ''}".strip()
