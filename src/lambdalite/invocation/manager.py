"""The ``Invoker`` the control plane talks to: pools of warm environments per function revision.

Each invocation takes the most recently used idle environment of its function revision or
starts a new one, so concurrent invocations run in separate environments and sequential ones
reuse a warm one. Idle environments are stopped by a reaper task as the keep-alive policy says
(see keeper.py), which may also start one ahead of a predicted invocation.
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
from lambdalite.invocation.gate import InitGate, derive_capacity
from lambdalite.invocation.image_env import image_environment
from lambdalite.invocation.keeper import PREWARM_INIT_TYPE, Keeper, Prewarm
from lambdalite.invocation.model import FunctionSpec, InvokeRequest, InvokeResult, LogSink
from lambdalite.invocation.pool import Pool
from lambdalite.invocation.provisioned import ProvisionedStatus, Provisioner
from lambdalite.invocation.runtime_env import runtime_argv
from lambdalite.invocation.snapshots import SnapshotStore
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
        # At most this many environments initialize at once; the rest wait their turn.
        self.gate: InitGate[ExecutionEnvironment] = InitGate(
            derive_capacity(settings.concurrent_inits), self._release
        )
        self.provisioned = Provisioner(self._new_env, self._teardown, self.gate, self._offer)
        # Keep-alive policy and idle memory budget over the pools (see keeper.py).
        self.keeper = Keeper(settings, self._pools, self._now, self._teardown)
        self._prewarms: set[asyncio.Task[None]] = set()
        # SnapStart templates: new environments of their versions are restored from them.
        self.snapshots = SnapshotStore(settings, log_sink, backend, command_for, self._runtime_dir)

    # -- Invoker ------------------------------------------------------------------------------
    async def invoke(self, spec: FunctionSpec, request: InvokeRequest) -> InvokeResult:
        if self._closed:
            raise ServiceException("The invocation service is shutting down.")
        self._start_reaper()
        qualifier = qualifier_of(request.invoked_arn)
        env = self.provisioned.acquire(spec, qualifier) if qualifier else None
        cold = False
        if env is None:
            env = self._pool(spec).acquire()
        if env is None:
            env, cold = await self._new_or_handed(spec, qualifier)
        try:
            if cold:
                try:
                    await env.initialize("on-demand", request.request_id)
                finally:
                    self.gate.leave()
            result = await env.invoke(request)
        except BaseException:
            self._release(env, keep=False)
            raise
        self._release(env)
        return result

    async def _new_or_handed(
        self, spec: FunctionSpec, qualifier: str
    ) -> tuple[ExecutionEnvironment, bool]:
        """Wait for an init slot: (a new environment holding the slot, True), or (a warm one
        handed over meanwhile, False)."""
        handed = await self.gate.enter(spec.pool_key, qualifier or None)
        if handed is not None:
            return handed, False
        pool = self._pool(spec)  # looked up again: an empty pool may be dropped while waiting
        env = pool.acquire()
        if env is not None:
            self.gate.leave()
            return env, False
        env = self._new_env(spec)
        pool.add_busy(env)
        return env, True

    def _new_env(self, spec: FunctionSpec) -> ExecutionEnvironment:
        if spec.image is not None:  # the image says what runs, in a root of its own
            env = image_environment(
                spec, self.settings, self._backend, self._sink, self._runtime_dir
            )
        else:
            argv = runtime_argv(spec, self._command_for(spec))
            env = self.snapshots.restored(spec, argv) or ExecutionEnvironment(
                spec, argv, self.settings, self._backend, self._sink, self._runtime_dir
            )
        env.on_dead = self._dead
        self._envs.add(env)
        return env

    def _pool(self, spec: FunctionSpec) -> Pool:
        pool = self._pools.get(spec.pool_key)
        if pool is None:
            pool = self._pools[spec.pool_key] = Pool(spec.pool_key, self.keeper)
        return pool

    def _release(self, env: ExecutionEnvironment, keep: bool = True) -> None:
        """An invocation is done with ``env``: back to its pool or provisioned set (or to an
        invocation waiting for an init slot), else destroyed."""
        if env.provisioned:
            if not (keep and not self._closed and self.provisioned.release(env)):
                self._teardown(env)
            return
        pool = self._pools.get(env.spec.pool_key)
        if pool is None:
            self._teardown(env)
            return
        if not keep:
            pool.release(env)
            self._teardown(env)
        elif self._closed or not pool.release(env):
            self._teardown(env)
        elif self.gate.waiting_for(pool.key):
            warm = pool.acquire()
            if warm is not None and not self.gate.hand_over(pool.key, warm):
                pool.release(warm)

    def _offer(self, env: ExecutionEnvironment, qualifier: str) -> bool:
        """Hand an idle provisioned environment to an invocation of its qualifier waiting
        for an init slot."""
        return self.gate.hand_over(env.spec.pool_key, env, tag=qualifier)

    def _dead(self, env: ExecutionEnvironment) -> None:
        self._envs.discard(env)
        if env.provisioned:
            self.provisioned.died(env)

    # -- provisioned concurrency --------------------------------------------------------------
    def provision(
        self,
        function: str,
        qualifier: str,
        targets: list[tuple[FunctionSpec, int]],
        retry: bool = False,
    ) -> None:
        if not self._closed:
            self.provisioned.provision(function, qualifier, targets, retry)

    def unprovision(self, function: str, qualifier: str | None = None) -> None:
        self.provisioned.unprovision(function, qualifier)

    def provisioned_status(self, function: str, qualifier: str) -> ProvisionedStatus | None:
        return self.provisioned.status(function, qualifier)

    def provisioned_configs(self) -> list[tuple[str, str]]:
        return self.provisioned.configured()

    def provisioned_environments(self) -> dict[str, int]:
        return self.provisioned.allocated()

    def init_figures(self) -> tuple[int, int]:
        """(environments initializing, invocations waiting for an init slot)."""
        return self.gate.active, self.gate.waiting

    async def retire(self, function_name: str, version: str | None = None) -> None:
        self.keeper.forget(function_name, version)
        await self.snapshots.drop(function_name, version)
        if version is None:
            self.provisioned.unprovision(function_name)
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
        await self.snapshots.close()
        await self.provisioned.close()
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for task in list(self._prewarms):
            task.cancel()
        await asyncio.gather(*list(self._prewarms), return_exceptions=True)
        for pool in self._pools.values():
            pool.take_idle()
        await asyncio.gather(*(env.destroy() for env in list(self._envs)))
        while self._teardowns:
            await asyncio.gather(*list(self._teardowns))
        self._pools.clear()

    # -- introspection ------------------------------------------------------------------------
    def has_idle(self, spec: FunctionSpec) -> bool:
        pool = self._pools.get(spec.pool_key)
        if pool is None:
            return False
        idle = pool.idle
        if idle and idle[-1].state is State.IDLE:  # the top of the stack, nearly always
            return True
        return any(env.state is State.IDLE for env in idle)

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

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _start_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        """Apply the keep-alive policy a few times per window: stop the idle environments it
        no longer keeps, start the pre-warms that are due."""
        interval = self.keeper.reap_interval()
        while True:
            await asyncio.sleep(interval)
            try:
                expired, due = self.keeper.sweep()
                for env in expired:
                    self._teardown(env)
                for prewarm in due:
                    task = asyncio.get_running_loop().create_task(self._prewarm(prewarm))
                    self._prewarms.add(task)
                    task.add_done_callback(self._prewarms.discard)
                for pool in list(self._pools.values()):
                    self._forget_if_empty(pool)
            except Exception:
                log.exception("reaping idle environments failed")

    async def _prewarm(self, due: Prewarm) -> None:
        """Start an environment ahead of a predicted invocation: INIT now, then idle."""
        if self._closed:
            return
        pool = self._pool(due.spec)
        pool.warming += 1
        env = self._new_env(due.spec)
        try:
            await self.gate.enter()
            try:
                failure = await env.initialize(PREWARM_INIT_TYPE, ahead=True)
            finally:
                self.gate.leave()
        except BaseException:
            pool.warming -= 1
            self._teardown(env)
            raise
        pool.warming -= 1
        live = not self._closed and self._pools.get(pool.key) is pool
        if failure is not None or not live or not pool.add_warmed(env):
            self._teardown(env)
            return
        log.debug("pre-warmed %s:%s (%s)", due.spec.function_name, due.spec.version, env.env_id)
        self.keeper.warmed(pool, env, due.keep_alive)
        if self.gate.waiting_for(pool.key):
            warm = pool.acquire()
            if warm is not None and not self.gate.hand_over(pool.key, warm):
                pool.release(warm)


def qualifier_of(invoked_arn: str) -> str:
    """The version or alias an invocation named (its ARN's eighth field), or ""."""
    parts = invoked_arn.split(":")
    return parts[7] if len(parts) > 7 else ""
