"""The init gate: how many execution environments may be initializing at once, server-wide.

A burst of cold starts all initializing together shares the CPUs so thinly that every INIT
slows down, and past the INIT timeout they all fail together. The gate lets at most
``capacity`` environments initialize at once; later ones wait their turn in arrival order
(FIFO), and their INIT timeout starts when they are let through, not while they wait. With
the machine kept busy but never oversubscribed, the burst finishes sooner than it would all
at once, and nothing times out.

A request waiting for an init slot may instead be handed a warm environment of its own
function revision that became idle meanwhile (``hand_over``): it then runs at once, without
INIT, and the slot it no longer needs goes to the next waiter. Lambda itself does not do
this (every request that found no idle environment gets a new one), but under a burst it is
what a caller wants: an answer as soon as any suitable environment is free.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")

# Environments initializing at once per CPU when ``concurrent_inits`` is 0 (see
# docs/concurrency.md for the measurements behind it).
INITS_PER_CPU = 4


def derive_capacity(configured: int, cpus: int | None = None) -> int:
    """``configured`` when positive, else ``INITS_PER_CPU`` per CPU this process may use."""
    if configured > 0:
        return configured
    if cpus is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
    return max(1, cpus) * INITS_PER_CPU


class _Waiter(Generic[T]):
    __slots__ = ("future", "key", "tag")

    def __init__(self, future: asyncio.Future[T | None], key: Hashable, tag: Hashable) -> None:
        self.future = future
        self.key = key
        self.tag = tag


class InitGate(Generic[T]):
    """At most ``capacity`` holders at once; waiters are served first come, first served.

    ``enter`` returns ``None`` when the caller holds a slot (it must call ``leave`` once its
    INIT has ended) or a value given by ``hand_over`` (then it holds no slot). A value handed
    to a waiter that is cancelled before it resumes goes to ``returned``.
    """

    def __init__(self, capacity: int, returned: Callable[[T], None]) -> None:
        self.capacity = max(1, capacity)
        self.active = 0
        self._returned = returned
        self._queue: deque[_Waiter[T]] = deque()
        self._by_key: dict[Hashable, deque[_Waiter[T]]] = {}
        self.handed_over = 0  # waiters served by a warm environment instead of a slot

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._queue if not w.future.done())

    def waiting_for(self, key: Hashable) -> bool:
        """Whether some invocation waits for a slot that a value for ``key`` could replace."""
        self._prune_key(key)  # leaves a waiting one in front, or drops the key
        return key in self._by_key

    async def enter(self, key: Hashable = None, tag: Hashable = None) -> T | None:
        """Wait for a slot (``None``) or for a value handed over for ``key``.

        ``key`` groups waiters that any value offered for that key may serve (a function
        revision); ``tag`` narrows it for ``hand_over(..., tag=...)`` (the qualifier invoked).
        """
        if self.active < self.capacity and not self._queue:
            self.active += 1
            return None
        future: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(future, key, tag)
        self._queue.append(waiter)
        if key is not None:
            self._by_key.setdefault(key, deque()).append(waiter)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                value = future.result()
                if value is None:
                    self.leave()
                else:
                    self._returned(value)
            else:
                future.cancel()
                self._prune()
                self._prune_key(key)
            raise

    def leave(self) -> None:
        """Give a slot back: the oldest waiter still waiting gets it."""
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.future.done():
                waiter.future.set_result(None)
                self._prune_key(waiter.key)
                return
        self.active -= 1

    def hand_over(self, key: Hashable, value: T, tag: Hashable = None) -> bool:
        """Give ``value`` to the oldest waiter for ``key`` (and ``tag``, when given); False if
        nobody waits for it."""
        waiters = self._by_key.get(key)
        if not waiters:
            return False
        for waiter in waiters:
            if waiter.future.done() or (tag is not None and waiter.tag != tag):
                continue
            waiter.future.set_result(value)
            self.handed_over += 1
            self._prune_key(key)
            self._prune()
            return True
        return False

    def _prune_key(self, key: Hashable) -> None:
        waiters = self._by_key.get(key)
        if waiters is None:
            return
        while waiters and waiters[0].future.done():
            waiters.popleft()
        if not waiters:
            del self._by_key[key]

    def _prune(self) -> None:
        """Drop served or cancelled waiters from the front of the queue."""
        while self._queue and self._queue[0].future.done():
            self._queue.popleft()
