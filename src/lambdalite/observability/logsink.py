"""Durable function logs: lines are buffered in memory and written to the store in batches.

An invocation's log lines arrive one by one on the event loop; writing each one to the
database would put a disk write on the invoke path. Instead ``emit`` appends to a buffer that
a background task flushes in a worker thread, and ``close`` flushes whatever is left, so a
clean shutdown loses nothing.

A flush costs a transaction and a commit whatever its size, so the pace follows the traffic:
every ``interval`` seconds while batches are small (a line written by a lone invocation is
readable within about that), every ``busy_interval`` seconds once a batch reaches
``busy_batch`` lines, so that under load the fixed cost of a flush is shared by many more
lines instead of taking CPU from the invocations themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from lambdalite.store.base import LogEvent, Store

log = logging.getLogger(__name__)


class StoreLogSink:
    def __init__(
        self,
        store: Store,
        interval: float = 0.05,
        busy_interval: float = 0.25,
        busy_batch: int = 64,
    ) -> None:
        self.store = store
        self.interval = interval
        self.busy_interval = busy_interval
        self.busy_batch = busy_batch
        # (group, stream, timestamp, message): a LogEvent each is only made when the store
        # takes nothing else (a few lines per invocation, on the event loop).
        self._buffer: list[tuple[str, str, int, str]] = []
        self._write: Callable[[list[tuple[str, str, int, str]]], None] = getattr(
            store, "append_log_lines", self._append_events
        )
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def emit(self, group: str, stream: str, timestamp_ms: int, message: str) -> None:
        # The store stamps the ingestion time of events that carry none when it writes them.
        self._buffer.append((group, stream, timestamp_ms, message))
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        pause = self.interval
        while not self._closed:
            await asyncio.sleep(pause)
            written = await self.flush()
            pause = self.busy_interval if written >= self.busy_batch else self.interval

    async def flush(self) -> int:
        """Write the buffered events; returns how many there were."""
        if not self._buffer:
            return 0
        batch, self._buffer = self._buffer, []
        try:
            await asyncio.to_thread(self._write, batch)
        except Exception:
            log.exception("could not store %d log events", len(batch))
        return len(batch)

    def _append_events(self, lines: list[tuple[str, str, int, str]]) -> None:
        self.store.append_logs([LogEvent(*line) for line in lines])

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()
