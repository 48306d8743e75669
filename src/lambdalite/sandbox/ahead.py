"""Children forked ahead of need from a zygote, so that a cold start only sends a plan.

A child forked ahead waits in a cgroup of its own (and, for namespace sandboxes, with the
function-independent part of its sandbox built) until a cold start sends it its plan. For each
kind of child (interpreter, preload directory, sandbox kind) ``AheadQueues`` keeps a queue of
them and refills it after each cold start that used one.

* **Off the event loop.** Making a child's cgroup (directories, limit writes) and having the
  zygote fork it are blocking system calls; the queue is refilled by a worker thread, so the
  server keeps serving meanwhile. The zygote's socket is shared with cold starts that fork on
  demand (``ForkServer`` serializes them).
* **Limits written once.** A child is put in a cgroup with the memory limit of the last cold
  start of its kind (most bursts are of one function), so the cold start that takes it
  usually has nothing to change; one with another limit resizes the cgroup.
* **Bursts.** The queue holds ``base`` children. Each cold start that finds it empty shortly
  after another one (a burst) has one more kept, up to ``MAX_AHEAD``; after
  ``BURST_IDLE`` seconds without a cold start of that kind the surplus is given up, and after
  ``idle`` seconds (the server's keep-alive) the rest. During a burst the worker stays: it
  refills whenever half the queue has been taken (a batch, not a thread hand-off per cold
  start), and leaves after ``LINGER`` seconds without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lambdalite.sandbox import cgroups
from lambdalite.sandbox.forkserver import Spawned, has_exited

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # interpreter, preload directory, sandbox kind
# Forks one child ahead of need in a cgroup with this memory limit (MB); runs in the worker.
ForkAhead = Callable[[int], "tuple[Spawned, cgroups.Cgroup | None]"]

MAX_AHEAD = 32
# The memory limit (MB) of children forked before any cold start of their kind said which.
AHEAD_MEMORY_MB = 10240
BURST_WINDOW = 1.0  # an empty queue this soon after the last cold start means a burst
BURST_IDLE = 5.0  # then the surplus over ``base`` is given up after this long without one
_REFILL_DELAY = 0.05  # after a lone cold start: it is still on its way, let it have the CPU
LINGER = 0.5  # a worker whose queue is full waits this long for a cold start before leaving
_WORKERS = 4  # kinds refilled at once


@dataclass
class Pending:
    """A child forked ahead of need: in its cgroup, waiting for a plan."""

    spawned: Spawned
    group: cgroups.Cgroup | None
    memory_mb: int  # the memory limit of its cgroup

    def alive(self) -> bool:
        return not has_exited(self.spawned.pidfd)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(self.spawned.pidfd, signal.SIGKILL)
        self.spawned.close()
        if self.group is not None:
            remove_soon(self.group)


class AheadQueues:
    """The queues of children forked ahead, by kind; see the module docstring. Every method
    runs on the event loop, but the worker thread appends to the queues (under a lock)."""

    def __init__(self, base: int, idle: float) -> None:
        self.base = base
        self.idle = idle
        self._lock = threading.Lock()
        self._taken = threading.Condition(self._lock)  # wakes workers waiting for room
        self._queues: dict[Key, list[Pending]] = {}
        self._targets: dict[Key, int] = {}
        self._memory: dict[Key, int] = {}
        self._last: dict[Key, float] = {}
        self._filling: set[Key] = set()
        self._refills: dict[Key, asyncio.TimerHandle] = {}
        self._expiries: dict[Key, asyncio.TimerHandle] = {}
        self._trims: dict[Key, asyncio.TimerHandle] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    def take(self, key: Key) -> Pending | None:
        """The oldest child of ``key`` waiting, if any (it may have died meanwhile)."""
        with self._lock:
            queue = self._queues.get(key)
            if not queue:
                return None
            pending = queue.pop(0)
            if key in self._filling and len(queue) < max(1, self._low(key)):
                self._taken.notify_all()
            return pending

    def waiting(self, key: Key | None = None) -> int:
        with self._lock:
            if key is not None:
                return len(self._queues.get(key, ()))
            return sum(len(queue) for queue in self._queues.values())

    def target(self, key: Key) -> int:
        return self._targets.get(key, self.base)

    def used(self, key: Key, memory_mb: int, found: bool, fork: ForkAhead) -> None:
        """A cold start of ``key`` happened (``found``: it took a child forked ahead): keep
        children coming for the next ones, with its memory limit."""
        if self.base <= 0 or self._closed:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        last = self._last.get(key)
        self._last[key] = now
        self._memory[key] = memory_mb
        grew = not found and last is not None and now - last < BURST_WINDOW
        if grew:
            self._targets[key] = min(MAX_AHEAD, self.target(key) + 1)
        self._restart(self._expiries, key, self.idle, self._expire)
        if self.target(key) > self.base:
            self._restart(self._trims, key, BURST_IDLE, self._trim)
        if key in self._filling:
            if grew:  # its worker may be waiting for the queue to run low: more are wanted
                with self._lock:
                    self._taken.notify_all()
            return
        if key in self._refills:
            return
        # A lone cold start is still on its way; in a burst, the next one is already here.
        delay = 0.0 if self.target(key) > self.base else _REFILL_DELAY
        self._refills[key] = loop.call_later(delay, self._refill, key, fork)

    def _restart(
        self,
        timers: dict[Key, asyncio.TimerHandle],
        key: Key,
        delay: float,
        callback: Callable[[Key], None],
    ) -> None:
        timer = timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        timers[key] = asyncio.get_running_loop().call_later(delay, callback, key)

    def _refill(self, key: Key, fork: ForkAhead) -> None:
        self._refills.pop(key, None)
        # Only while cold starts of ``key`` are recent (its expiry is still to come).
        if self._closed or key in self._filling or key not in self._expiries:
            return
        with self._lock:
            queue = self._queues.setdefault(key, [])
            if len(queue) >= self.target(key):
                return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(_WORKERS, thread_name_prefix="zygote-ahead")
        self._filling.add(key)
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(self._executor, self._fork, key, fork)
        done.add_done_callback(lambda future: self._filled(key, future, fork))

    def _wants(self, key: Key) -> bool:
        with self._lock:
            queue = self._queues.get(key)
            return not self._closed and queue is not None and len(queue) < self.target(key)

    def _low(self, key: Key) -> int:
        """Below this many waiting, a worker filling ``key`` is woken (half the target: it
        refills in batches, not once per cold start)."""
        return self.target(key) // 2

    def _wait_low(self, key: Key) -> bool:
        """In the worker thread: wait until the queue of ``key`` runs low (True), or until it
        is given up or no cold start came for ``LINGER`` seconds (False)."""
        with self._lock:
            while len(self._queues.get(key, ())) >= max(1, self._low(key)):
                if self._closed or key not in self._queues or not self._taken.wait(LINGER):
                    return False
            return not self._closed and key in self._queues

    def _fork(self, key: Key, fork: ForkAhead) -> int:
        """In the worker thread: fill the queue of ``key``, and again each time cold starts
        have taken half of it (a burst); return once none came for a while."""
        made = 0
        while True:
            while self._wants(key):
                memory_mb = self._memory.get(key, AHEAD_MEMORY_MB)
                spawned, group = fork(memory_mb)
                pending = Pending(spawned, group, memory_mb)
                with self._lock:
                    queue = self._queues.get(key)
                    kept = queue is not None and not self._closed
                    if kept:
                        assert queue is not None
                        queue.append(pending)
                if not kept:  # given up meanwhile
                    pending.discard()
                    return made
                made += 1
            if not self._wait_low(key):
                return made

    def _filled(self, key: Key, future: asyncio.Future[int], fork: ForkAhead) -> None:
        self._filling.discard(key)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            log.warning("cannot fork ahead from the zygote of %s: %s", key[0], exc)
            return
        # Taken just as the worker left: go on at once.
        if not self._closed and self.waiting(key) < self.target(key):
            self._refills[key] = asyncio.get_running_loop().call_later(0, self._refill, key, fork)

    def _trim(self, key: Key) -> None:
        """The burst is over: keep ``base`` children of ``key``, give the others up."""
        self._trims.pop(key, None)
        self._targets.pop(key, None)
        with self._lock:
            queue = self._queues.get(key, [])
            surplus, queue[self.base :] = queue[self.base :], []
        for pending in surplus:
            pending.discard()

    def _expire(self, key: Key) -> None:
        """No cold start of this kind for a while: give its children up."""
        timer = self._expiries.pop(key, None)
        if timer is not None:
            timer.cancel()  # when called before it fired (``drop``)
        self._targets.pop(key, None)
        with self._lock:
            queue = self._queues.pop(key, [])
            self._taken.notify_all()
        for pending in queue:
            pending.discard()

    def drop(self, key: Key) -> None:
        """Give up the children of ``key`` now (their zygote is gone)."""
        self._expire(key)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._taken.notify_all()
        for timers in (self._refills, self._expiries, self._trims):
            for timer in timers.values():
                timer.cancel()
            timers.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        with self._lock:
            queues, self._queues = self._queues, {}
        for queue in queues.values():
            for pending in queue:
                pending.discard()


def remove_soon(group: cgroups.Cgroup, attempts: int = 200) -> None:
    """Remove the cgroup of a killed child once the kernel has let it go (off the loop's
    critical path: retried from the event loop, or briefly here without one)."""
    if group.remove() or attempts <= 0:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        deadline = time.monotonic() + 1.0
        while not group.remove() and time.monotonic() < deadline:
            time.sleep(0.005)
        return
    loop.call_later(0.01, remove_soon, group, attempts - 1)
