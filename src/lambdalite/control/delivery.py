"""Delivering asynchronous invocations from the durable queue.

A dispatcher task claims ready events in batches under this server's owner name and runs up
to ``async_workers`` of them at once; a heartbeat renews the leases of everything claimed, so
if the server dies its events become claimable again once ``async_lease`` seconds pass. Each
event ends in exactly one settlement, committed through the group-committing writer:

* it ran and succeeded, or failed for good: **ack**, with the ``OnSuccess``/``OnFailure``
  record and the dead letter as follow-up messages in the same transaction (or sent first,
  for targets that deliver directly);
* the function failed and may retry: **reschedule** ≈1 then ≈2 minutes later;
* it was throttled (concurrency, scaling rate) or the platform failed: **reschedule** with
  exponential backoff from 1 s to 5 minutes.

Events older than ``MaximumEventAgeInSeconds`` end with ``EventAgeExceeded``; with reserved
concurrency 0 they end at once with ``ZeroReservedConcurrency``; beyond the recursion depth
with ``RecursiveInvocationException``. Every interval is multiplied by ``async_delay_scale``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import socket
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field

from lambdalite.config import Settings
from lambdalite.control.asyncevent import AsyncEvent
from lambdalite.control.catalog import Resolved
from lambdalite.control.destinations import Destinations, UndeliverableError, record_json
from lambdalite.control.eventconfig import AsyncConfig, EventInvokeConfigService
from lambdalite.control.invoke import InvokeService
from lambdalite.control.limiter import ConcurrencyLimiter
from lambdalite.control.queuewriter import QueueWriter
from lambdalite.control.records import (
    EVENT_AGE_EXCEEDED,
    RECURSIVE,
    RETRIES_EXHAUSTED,
    SUCCESS,
    ZERO_RESERVED,
    Outbound,
    dead_letter,
    error_message,
    invocation_record,
)
from lambdalite.control.recursion import Lineage, RecursionService, too_deep
from lambdalite.core.errors import LambdaError, ResourceNotFoundException, TooManyRequestsException
from lambdalite.invocation.model import InvokeRequest, InvokeResult
from lambdalite.store.base import Ack, NewMessage, QueuedMessage, Retry, Store

log = logging.getLogger(__name__)

# Waits before the retries of a function error, as AWS spaces them (seconds).
RETRY_DELAYS = (60.0, 120.0)
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 300.0
# How long an idle dispatcher waits before looking for events other servers enqueued.
POLL_INTERVAL = 0.5


@dataclass
class AsyncFigures:
    """Counters since start, per function."""

    received: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    requeued: Counter[tuple[str, str]] = field(default_factory=Counter)  # (fn, throttle|error)
    destination_failures: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Done:
    """An event finished: ack it, with these destination messages."""

    outbound: list[tuple[str, Outbound]]
    # The record of a stopped loop starts a chain of its own, or it would be stopped too.
    new_chain: bool = False


class AsyncDelivery:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        invocations: InvokeService,
        configs: EventInvokeConfigService,
        destinations: Destinations,
        recursion: RecursionService,
        limiter: ConcurrencyLimiter,
    ) -> None:
        self.settings = settings
        self.store = store
        self.invocations = invocations
        self.configs = configs
        self.destinations = destinations
        self.recursion = recursion
        self.limiter = limiter
        self.arns = invocations.deps.arns
        # 0 makes a server that only accepts events, leaving delivery to others.
        self.workers = max(0, settings.async_workers)
        self.lease_ms = max(1, int(settings.async_lease * 1000))
        self.scale = settings.async_delay_scale
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.writer = QueueWriter(store, self.owner)
        self.figures = AsyncFigures()
        self.running: Counter[str] = Counter()  # async invocations in progress, per function
        self._buffer: deque[QueuedMessage] = deque()
        self._held: set[int] = set()
        self._active = 0
        self._due: list[float] = []  # loop times at which rescheduled events fall due
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._closing = False

    # -- accepting ----------------------------------------------------------------------------
    async def submit(self, event: AsyncEvent, payload: bytes) -> None:
        """Store an accepted event; returns once it is committed."""
        await self.writer.enqueue(event.message(payload))
        self.figures.received[event.function] += 1
        self._wake.set()

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        if self.workers == 0:
            return
        loop = asyncio.get_running_loop()
        self._loop_task = loop.create_task(self._dispatch())
        self._heartbeat = loop.create_task(self._renew())

    async def close(self) -> None:
        """Stop claiming, abandon running deliveries, commit what finished, release the rest."""
        self._closing = True
        self._wake.set()
        for task in (self._loop_task, self._heartbeat, *self._tasks):
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in (self._loop_task, self._heartbeat) if t is not None),
            *self._tasks,
            return_exceptions=True,
        )
        await self.writer.drain()
        try:
            released = await self.writer.call(self.store.release, self.owner)
            if released:
                log.info("released %d asynchronous events for redelivery", released)
        except Exception:
            log.exception("could not release claimed events; they return after their lease")
        await self.writer.close()

    # -- the dispatcher -----------------------------------------------------------------------
    def _want(self) -> int:
        """How many events to claim now: enough to fill free workers plus one batch ahead."""
        room = self.workers - self._active
        if len(self._buffer) > max(room, self.workers // 2):
            return 0
        return room + self.workers - len(self._buffer)

    async def _dispatch(self) -> None:
        while not self._closing:
            try:
                await self._dispatch_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the asynchronous dispatcher failed; it carries on")
                await asyncio.sleep(POLL_INTERVAL)

    async def _dispatch_once(self) -> None:
        """Claim what the workers can take, start it, then wait for a reason to look again."""
        loop = asyncio.get_running_loop()
        while not self._closing:
            self._wake.clear()
            full = False
            want = self._want()
            if want > 0:
                try:
                    batch = await self.writer.call(
                        self.store.claim, self.owner, want, self.lease_ms
                    )
                except Exception:
                    log.exception("claiming asynchronous events failed")
                    batch = []
                for message in batch:
                    if message.id not in self._held:
                        self._held.add(message.id)
                        self._buffer.append(message)
                full = len(batch) == want
            while self._buffer and self._active < self.workers:
                self._start(self._buffer.popleft())
            if full and self._want() > 0:
                continue
            timeout = POLL_INTERVAL
            while self._due and self._due[0] <= loop.time():
                heapq.heappop(self._due)
                timeout = 0.0
            if self._due:
                timeout = min(timeout, self._due[0] - loop.time())
            if timeout > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)

    async def _renew(self) -> None:
        interval = max(self.lease_ms / 3000, 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                held = list(self._held)
                if held:
                    await self.writer.call(self.store.renew, self.owner, self.lease_ms, ids=held)
            except Exception:
                log.exception("renewing leases of asynchronous events failed")

    def _start(self, message: QueuedMessage) -> None:
        self._active += 1
        task = asyncio.get_running_loop().create_task(self._deliver(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- one event --------------------------------------------------------------------------
    async def _deliver(self, message: QueuedMessage) -> None:
        released = settled = False
        try:
            event = AsyncEvent.load(message.body)
            try:
                self.running[event.function] += 1
                outcome = await self._attempt(event, message)
            finally:
                self.running[event.function] -= 1
                if not self.running[event.function]:
                    del self.running[event.function]
                self._active -= 1
                released = True
                self._wake.set()
            if isinstance(outcome, Retry):
                await self.writer.reschedule(outcome)
                self._remember_due(outcome.due_at)
            else:
                follow_ups = await self._send(event, outcome)
                await self.writer.ack(Ack(message.id, follow_ups))
            settled = True
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivering asynchronous event %s failed", message.id)
        finally:
            if not released:
                self._active -= 1
            # No longer renewed: if it was not settled, its lease runs out and it comes back.
            self._held.discard(message.id)
        if not settled:
            await self._retry_later(message)

    async def _retry_later(self, message: QueuedMessage) -> None:
        """After an unexpected failure, try to put the event back after a backoff."""
        due = int((time.time() + BACKOFF_FIRST * self.scale) * 1000)
        try:
            await self.writer.reschedule(Retry(message.id, due, message.body))
            self._remember_due(due)
        except Exception:
            log.exception("event %s returns once its lease runs out", message.id)

    def _remember_due(self, due_ms: int) -> None:
        delay = due_ms / 1000 - time.time()
        heapq.heappush(self._due, asyncio.get_running_loop().time() + delay)

    async def _attempt(self, event: AsyncEvent, message: QueuedMessage) -> _Done | Retry:
        name = event.function
        try:
            resolved, invoked_arn = self.invocations.resolve(name, event.qualifier)
        except ResourceNotFoundException:
            log.warning("dropping event %s: %s no longer exists", event.request_id, name)
            self.figures.dropped[name] += 1
            return _Done([])
        config = self.configs.effective(name, event.qualifier)
        now = time.time()
        expires = message.enqueued_at / 1000 + config.max_age * self.scale
        if now >= expires:
            return self._finish(event, message, resolved, config, EVENT_AGE_EXCEEDED, None)
        if self.limiter.reservations.get(name) == 0:
            return self._finish(event, message, resolved, config, ZERO_RESERVED, None, 429)
        if too_deep(event.lineage, self.recursion.recursion(name)):
            return self._finish(event, message, resolved, config, RECURSIVE, None, 400)
        request = InvokeRequest(
            request_id=event.request_id,
            payload=message.payload,
            invoked_arn=invoked_arn,
            trace_id=event.trace_id,
        )
        try:
            result = await self.invocations.run(resolved, request, event.qualifier)
        except TooManyRequestsException:
            return self._backoff(event, message, expires, "throttle")
        except (LambdaError, OSError, RuntimeError) as exc:
            log.warning("event %s hit a platform error, will retry: %s", event.request_id, exc)
            return self._backoff(event, message, expires, "error")
        if result.function_error is None:
            return self._finish(event, message, resolved, config, SUCCESS, result)
        failed = event.failed_attempt()
        if failed.attempts > config.max_retries:
            return self._finish(failed, message, resolved, config, RETRIES_EXHAUSTED, result)
        due = time.time() + RETRY_DELAYS[failed.attempts - 1] * self.scale
        if due >= expires:
            return self._finish(failed, message, resolved, config, EVENT_AGE_EXCEEDED, result)
        self.figures.requeued[(name, "retry")] += 1
        return Retry(message.id, int(due * 1000), failed.body())

    def _backoff(
        self, event: AsyncEvent, message: QueuedMessage, expires: float, kind: str
    ) -> Retry:
        delay = min(BACKOFF_FIRST * 2**event.backoffs, BACKOFF_MAX) * self.scale
        due = min(time.time() + delay, expires)
        self.figures.requeued[(event.function, kind)] += 1
        return Retry(message.id, int(due * 1000), event.backed_off().body())

    def _finish(
        self,
        event: AsyncEvent,
        message: QueuedMessage,
        resolved: Resolved,
        config: AsyncConfig,
        condition: str,
        result: InvokeResult | None,
        status: int = 200,
    ) -> _Done:
        name = event.function
        self.figures.outcomes[(name, condition)] += 1
        source = self.arns.function(name)
        success = condition == SUCCESS
        outbound: list[tuple[str, Outbound]] = []
        target = config.on_success if success else config.on_failure
        if target:
            record = invocation_record(
                request_id=event.request_id,
                function_arn=self.arns.function(name, resolved.version),
                condition=condition,
                invoke_count=event.attempts + (1 if success else 0),
                payload=message.payload,
                executed_version=resolved.version,
                response=result,
                now=time.time(),
            )
            body = record_json(record)
            outbound.append((target, Outbound("destination", source, body, success=success)))
        dead = (resolved.config.get("DeadLetterConfig") or {}).get("TargetArn")
        if dead and not success:
            reason = error_message(result, condition)
            letter = dead_letter(
                source_arn=source,
                request_id=event.request_id,
                payload=message.payload,
                status=status,
                message=reason,
            )
            outbound.append((dead, letter))
        return _Done(outbound, new_chain=condition == RECURSIVE)

    async def _send(self, event: AsyncEvent, done: _Done) -> list[NewMessage]:
        follow_ups: list[NewMessage] = []
        lineage = Lineage(event.chain, 0) if done.new_chain else event.lineage
        for arn, outbound in done.outbound:
            try:
                follow_ups += await self.destinations.deliver(arn, outbound, lineage.next())
            except UndeliverableError as exc:
                self.figures.destination_failures[event.function] += 1
                log.warning(
                    "could not deliver %s of %s to %s: %s",
                    outbound.kind,
                    event.request_id,
                    arn,
                    exc,
                )
        return follow_ups
