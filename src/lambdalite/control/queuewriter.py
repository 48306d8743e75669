"""Group commit for the durable queue.

Every queue write the event loop asks for (enqueue an accepted event, ack or reschedule a
delivered one) waits here until it is committed, but writes that arrive while a commit is in
progress are gathered and committed together by the next one. Under load a single
transaction carries hundreds of events, which is what lets one SQLite file or one PostgreSQL
connection keep up with thousands of accepted events per second while every ``202`` is still
sent only after its event is on disk. All store calls run on one worker thread, so the loop
never blocks on the database and the queue's own writes never contend with each other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from lambdalite.store.base import Ack, NewMessage, Retry, Store

log = logging.getLogger(__name__)

T = TypeVar("T")


class QueueWriter:
    def __init__(self, store: Store, owner: str) -> None:
        self.store = store
        self.owner = owner
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="lambdalite-queue")
        self._enqueues: list[tuple[NewMessage, asyncio.Future[int]]] = []
        self._acks: list[tuple[Ack, asyncio.Future[bool]]] = []
        self._retries: list[tuple[Retry, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.commits = 0  # transactions, for the figures

    # -- writes ------------------------------------------------------------------------------
    def _submit(self, bucket: list[tuple[Any, asyncio.Future[Any]]], item: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        bucket.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return future

    async def enqueue(self, message: NewMessage) -> int:
        """Return the message id once it is committed."""
        result: int = await self._submit(self._enqueues, message)
        return result

    async def ack(self, ack: Ack) -> bool:
        result: bool = await self._submit(self._acks, ack)
        return result

    async def reschedule(self, retry: Retry) -> bool:
        result: bool = await self._submit(self._retries, retry)
        return result

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run any other store call on the queue's thread (claims, renewals, figures)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def _flush(self) -> None:
        while self._enqueues or self._acks or self._retries:
            enqueues, self._enqueues = self._enqueues, []
            acks, self._acks = self._acks, []
            retries, self._retries = self._retries, []
            if enqueues:
                await self._commit(
                    enqueues,
                    lambda items: self.store.enqueue(items),
                    lambda ids, i, _: ids[i],
                )
            if acks:
                await self._commit(
                    acks,
                    lambda items: self.store.ack(self.owner, items),
                    lambda done, _, item: item.id in done,
                )
            if retries:
                await self._commit(
                    retries,
                    lambda items: self.store.reschedule(self.owner, items),
                    lambda done, _, item: item.id in done,
                )

    async def _commit(
        self,
        batch: list[tuple[Any, asyncio.Future[Any]]],
        write: Callable[[list[Any]], Any],
        pick: Callable[[Any, int, Any], Any],
    ) -> None:
        items = [item for item, _ in batch]
        try:
            result = await self.call(write, items)
        except Exception as exc:
            log.exception("queue write of %d items failed", len(items))
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.commits += 1
        for index, (item, future) in enumerate(batch):
            if not future.done():
                future.set_result(pick(result, index, item))

    # -- shutdown ------------------------------------------------------------------------------
    async def drain(self) -> None:
        """Wait until everything submitted so far is committed."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def close(self) -> None:
        await self.drain()
        self._executor.shutdown(wait=True)
