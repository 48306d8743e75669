"""Idle execution environments of one function revision, reused last-in first-out.

LIFO keeps invocations on the most recently used environments: their globals, connections
and /tmp are warmest, and the ones at the bottom of the stack age out under keep-alive when
traffic drops, so the pool shrinks by itself. It also makes the stack's order the order of
concurrency slots (see ``idletimes``): the top idle environment serves the next invocation
beyond those running, the one below it the one after that.

The pool tells an observer (the keep-alive keeper) when an invocation takes or gives back an
environment and how much configured memory its idle environments hold, so the idle memory
budget is kept without walking every pool on each invocation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from lambdalite.invocation.environment import ExecutionEnvironment, State


class PoolObserver(Protocol):
    def started(self, pool: Pool, env: ExecutionEnvironment) -> None: ...

    def finished(self, pool: Pool, env: ExecutionEnvironment, kept: bool) -> None: ...

    def idle_memory_changed(self, delta_mb: int) -> None: ...


def counted_mb(env: ExecutionEnvironment) -> int:
    """Memory an idle environment holds against the budget (provisioned ones hold none)."""
    return 0 if env.provisioned else env.spec.memory_mb


class Pool:
    def __init__(self, key: tuple[str, str, str], observer: PoolObserver | None = None) -> None:
        self.key = key
        self.idle: list[ExecutionEnvironment] = []  # most recently used last
        self.busy: set[ExecutionEnvironment] = set()
        self.warming = 0  # environments being initialized ahead of an invocation
        self._observer = observer
        self.idle_mb = 0

    @property
    def function_name(self) -> str:
        return self.key[0]

    @property
    def version(self) -> str:
        return self.key[1]

    @property
    def empty(self) -> bool:
        return not self.idle and not self.busy and not self.warming

    def acquire(self) -> ExecutionEnvironment | None:
        """The most recently used live idle environment, now counted busy; None if none."""
        while self.idle:
            env = self.idle.pop()
            self._counted(-counted_mb(env))
            if env.state is State.IDLE:
                self.add_busy(env)
                return env
        return None

    def add_busy(self, env: ExecutionEnvironment) -> None:
        self.busy.add(env)
        if self._observer is not None:
            self._observer.started(self, env)

    def release(self, env: ExecutionEnvironment) -> bool:
        """Return a busy environment; True when it went back to the idle stack."""
        if env not in self.busy:
            return False
        self.busy.discard(env)
        kept = env.reusable
        if kept:
            self.idle.append(env)
            self._counted(counted_mb(env))
        if self._observer is not None:
            self._observer.finished(self, env, kept)
        return kept

    def add_warmed(self, env: ExecutionEnvironment) -> bool:
        """Put an environment initialized ahead of an invocation on top of the idle stack."""
        if not env.reusable:
            return False
        self.idle.append(env)
        self._counted(counted_mb(env))
        return True

    def keep_only(self, keep: Iterable[ExecutionEnvironment]) -> list[ExecutionEnvironment]:
        """Keep the given idle environments (in stack order) and return the others, removed."""
        wanted = set(keep)
        kept = [env for env in self.idle if env in wanted]
        removed = [env for env in self.idle if env not in wanted]
        self.idle = kept
        self._counted(-sum(counted_mb(env) for env in removed))
        return removed

    def remove(self, env: ExecutionEnvironment) -> bool:
        if env not in self.idle:
            return False
        self.idle.remove(env)
        self._counted(-counted_mb(env))
        return True

    def take_idle(self) -> list[ExecutionEnvironment]:
        idle, self.idle = self.idle, []
        self._counted(-sum(counted_mb(env) for env in idle))
        return idle

    def _counted(self, delta_mb: int) -> None:
        if delta_mb:
            self.idle_mb += delta_mb
            if self._observer is not None:
                self._observer.idle_memory_changed(delta_mb)
