"""Durable function logs: lines are buffered in memory and written to the store in batches.

An invocation's log lines arrive one by one on the event loop; writing each one to the
database would put a disk write on the invoke path. Instead ``emit`` appends to a buffer that
a background task flushes every ``interval`` seconds in a worker thread, and ``close`` flushes
whatever is left, so a clean shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import logging

from lambdalite.core.clock import now_ms
from lambdalite.store.base import LogEvent, Store

log = logging.getLogger(__name__)


class StoreLogSink:
    def __init__(self, store: Store, interval: float = 0.05) -> None:
        self.store = store
        self.interval = interval
        self._buffer: list[LogEvent] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closed = False

    def emit(self, group: str, stream: str, timestamp_ms: int, message: str) -> None:
        self._buffer.append(LogEvent(group, stream, timestamp_ms, message))
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        stamped = [
            LogEvent(e.group, e.stream, e.timestamp, e.message, ingestion_time=now_ms())
            for e in batch
        ]
        try:
            await asyncio.to_thread(self.store.append_logs, stamped)
        except Exception:
            log.exception("could not store %d log events", len(stamped))

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()
