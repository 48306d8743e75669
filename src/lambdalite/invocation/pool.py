"""Idle execution environments of one function revision, reused last-in first-out.

LIFO keeps invocations on the most recently used environments: their globals, connections
and /tmp are warmest, and the ones at the bottom of the stack age out under keep-alive when
traffic drops, so the pool shrinks by itself.
"""

from __future__ import annotations

from lambdalite.invocation.environment import ExecutionEnvironment, State


class Pool:
    def __init__(self, key: tuple[str, str, str]) -> None:
        self.key = key
        self.idle: list[ExecutionEnvironment] = []  # most recently used last
        self.busy: set[ExecutionEnvironment] = set()

    @property
    def function_name(self) -> str:
        return self.key[0]

    @property
    def version(self) -> str:
        return self.key[1]

    @property
    def empty(self) -> bool:
        return not self.idle and not self.busy

    def acquire(self) -> ExecutionEnvironment | None:
        """The most recently used live idle environment, now counted busy; None if none."""
        while self.idle:
            env = self.idle.pop()
            if env.state is State.IDLE:
                self.busy.add(env)
                return env
        return None

    def add_busy(self, env: ExecutionEnvironment) -> None:
        self.busy.add(env)

    def release(self, env: ExecutionEnvironment) -> bool:
        """Return a busy environment; True when it went back to the idle stack."""
        self.busy.discard(env)
        if env.reusable:
            self.idle.append(env)
            return True
        return False

    def take_expired(self, now: float, keep_alive: float) -> list[ExecutionEnvironment]:
        """Remove and return idle environments unused for ``keep_alive`` seconds or dead."""
        keep: list[ExecutionEnvironment] = []
        expired: list[ExecutionEnvironment] = []
        for env in self.idle:
            dead = env.state is not State.IDLE
            (expired if dead or now - env.last_used >= keep_alive else keep).append(env)
        self.idle = keep
        return expired

    def take_idle(self) -> list[ExecutionEnvironment]:
        idle, self.idle = self.idle, []
        return idle
