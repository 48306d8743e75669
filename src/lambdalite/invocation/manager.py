"""The ``Invoker`` the control plane talks to: pools of warm environments per function revision.

Each invocation takes the most recently used idle environment of its function revision or
starts a new one, so concurrent invocations run in separate environments and sequential ones
reuse a warm one. Idle environments are stopped after ``keep_alive`` seconds by a reaper task.
Nothing a function does (crashing, hanging, flooding output, forking) may crash or stall the
manager: every wait is bounded and every teardown runs off the caller's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lambdalite.config import Settings
from lambdalite.core.errors import ServiceException
from lambdalite.invocation.environment import ExecutionEnvironment, State
from lambdalite.invocation.model import FunctionSpec, InvokeRequest, InvokeResult, LogSink
from lambdalite.invocation.pool import Pool
from lambdalite.invocation.runtime_env import runtime_argv
from lambdalite.sandbox.base import SandboxBackend

log = logging.getLogger(__name__)

CommandFor = Callable[[FunctionSpec], list[str]]


@dataclass(frozen=True)
class EnvironmentInfo:
    env_id: str
    function_name: str
    version: str
    state: str  # starting | idle | busy | dead
    pid: int | None
    log_stream: str


class EnvironmentManager:
    """Implements ``lambdalite.invocation.model.Invoker``."""

    def __init__(
        self,
        settings: Settings,
        log_sink: LogSink,
        backend: SandboxBackend,
        command_for: CommandFor,
        *,
        runtime_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self._sink = log_sink
        self._backend = backend
        self._command_for = command_for
        # LAMBDA_RUNTIME_DIR: where the runtime clients live.
        self._runtime_dir = runtime_dir or Path(__file__).resolve().parent.parent / "runtimes"
        self._pools: dict[tuple[str, str, str], Pool] = {}
        self._envs: set[ExecutionEnvironment] = set()  # every environment not yet destroyed
        self._teardowns: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    # -- Invoker ------------------------------------------------------------------------------
    async def invoke(self, spec: FunctionSpec, request: InvokeRequest) -> InvokeResult:
        if self._closed:
            raise ServiceException("The invocation service is shutting down.")
        self._start_reaper()
        pool = self._pools.get(spec.pool_key)
        if pool is None:
            pool = self._pools[spec.pool_key] = Pool(spec.pool_key)
        env = pool.acquire()
        if env is None:
            argv = runtime_argv(spec, self._command_for(spec))
            env = ExecutionEnvironment(
                spec, argv, self.settings, self._backend, self._sink, self._runtime_dir
            )
            env.on_dead = self._envs.discard
            self._envs.add(env)
            pool.add_busy(env)
        try:
            result = await env.invoke(request)
        except BaseException:
            pool.release(env)
            self._teardown(env)
            raise
        if self._closed or not pool.release(env):
            self._teardown(env)
        return result

    async def retire(self, function_name: str, version: str | None = None) -> None:
        for pool in list(self._pools.values()):
            if pool.function_name != function_name or version not in (None, pool.version):
                continue
            for env in pool.busy:
                env.retired = True
            idle = pool.take_idle()
            await asyncio.gather(*(env.destroy() for env in idle))
            self._forget_if_empty(pool)

    async def close(self) -> None:
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for pool in self._pools.values():
            pool.take_idle()
        await asyncio.gather(*(env.destroy() for env in list(self._envs)))
        while self._teardowns:
            await asyncio.gather(*list(self._teardowns))
        self._pools.clear()

    # -- introspection ------------------------------------------------------------------------
    def has_idle(self, spec: FunctionSpec) -> bool:
        pool = self._pools.get(spec.pool_key)
        return pool is not None and any(env.state is State.IDLE for env in pool.idle)

    def environments(self) -> list[EnvironmentInfo]:
        return [
            EnvironmentInfo(
                env.env_id,
                env.spec.function_name,
                env.spec.version,
                env.state.value,
                env.pid,
                env.log_stream,
            )
            for env in self._envs
        ]

    # -- internals ----------------------------------------------------------------------------
    def _teardown(self, env: ExecutionEnvironment) -> None:
        """Destroy ``env`` without making the caller wait for it."""
        task = asyncio.get_running_loop().create_task(env.destroy())
        self._teardowns.add(task)
        task.add_done_callback(self._teardowns.discard)

    def _forget_if_empty(self, pool: Pool) -> None:
        if pool.empty and self._pools.get(pool.key) is pool:
            del self._pools[pool.key]

    def _start_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        keep_alive = self.settings.keep_alive
        interval = min(max(keep_alive / 4, 0.01), 1.0)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            try:
                now = loop.time()
                for pool in list(self._pools.values()):
                    for env in pool.take_expired(now, keep_alive):
                        self._teardown(env)
                    self._forget_if_empty(pool)
            except Exception:
                log.exception("reaping idle environments failed")
