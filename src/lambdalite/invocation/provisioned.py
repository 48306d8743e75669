"""Provisioned concurrency: execution environments initialized before any invocation.

Each provisioned concurrency configuration (a function and the version or alias it names)
has a ``ProvisionedSet``: the specs it targets (one version, or two for an alias with
weighted routing) with a number of environments each. Its environments run INIT as soon as
the configuration is applied (``AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency``,
INIT_START and INIT_REPORT logged then), through the same init gate as on-demand cold starts,
and then wait idle for invocations of that qualifier, which take them before any on-demand
environment. They live outside the on-demand pools, so neither keep-alive nor memory
eviction ever stops them; one that dies (crash, timeout reset) is replaced; they stop when
the configuration is deleted or changed away from them.

Status follows Lambda: ``IN_PROGRESS`` until every requested environment has initialized
once, then ``READY`` (also while a dead one is being replaced), or ``FAILED`` with a reason
when an INIT fails, after which no more are started until the configuration changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lambdalite.invocation.environment import ExecutionEnvironment, State
from lambdalite.invocation.gate import InitGate
from lambdalite.invocation.model import FunctionSpec

log = logging.getLogger(__name__)

INIT_TYPE = "provisioned-concurrency"
PoolKey = tuple[str, str, str]


@dataclass(frozen=True)
class ProvisionedStatus:
    requested: int
    allocated: int  # initialized and alive
    status: str  # IN_PROGRESS | READY | FAILED
    reason: str | None = None


class ProvisionedSet:
    """The environments of one configuration."""

    def __init__(self, function: str, qualifier: str) -> None:
        self.function = function
        self.qualifier = qualifier
        self.targets: dict[PoolKey, tuple[FunctionSpec, int]] = {}
        self.idle: dict[PoolKey, list[ExecutionEnvironment]] = {}
        self.busy: set[ExecutionEnvironment] = set()
        self.starting: set[ExecutionEnvironment] = set()
        self.ready = False  # every requested environment initialized at least once
        self.failure: str | None = None
        self.closed = False

    @property
    def requested(self) -> int:
        return sum(count for _spec, count in self.targets.values())

    @property
    def allocated(self) -> int:
        idle = sum(1 for envs in self.idle.values() for env in envs if env.state is State.IDLE)
        return idle + sum(1 for env in self.busy if env.state is not State.DEAD)

    def live(self, key: PoolKey) -> int:
        """Environments of ``key`` alive or initializing (busy ones that died not counted)."""
        idle = len(self.idle.get(key, ()))
        busy = sum(1 for env in self.busy if env.spec.pool_key == key and _alive(env))
        starting = sum(1 for env in self.starting if env.spec.pool_key == key)
        return idle + busy + starting

    def wanted(self, key: PoolKey) -> int:
        target = self.targets.get(key)
        return target[1] if target is not None else 0

    def status(self) -> ProvisionedStatus:
        allocated = self.allocated
        if self.failure is not None:
            return ProvisionedStatus(self.requested, allocated, "FAILED", self.failure)
        if not self.ready and allocated >= self.requested:
            self.ready = True
        return ProvisionedStatus(
            self.requested, allocated, "READY" if self.ready else "IN_PROGRESS"
        )


class Provisioner:
    """Every ``ProvisionedSet`` of the server; driven by the control plane, used by the
    manager's invoke path. ``create`` makes (and registers) a new environment, ``teardown``
    destroys one off the caller's path, ``offer`` gives a newly idle environment to an
    invocation waiting for an init slot (True when taken)."""

    def __init__(
        self,
        create: Callable[[FunctionSpec], ExecutionEnvironment],
        teardown: Callable[[ExecutionEnvironment], None],
        gate: InitGate[ExecutionEnvironment],
        offer: Callable[[ExecutionEnvironment, str], bool],
    ) -> None:
        self._create = create
        self._teardown = teardown
        self._gate = gate
        self._offer = offer
        self._sets: dict[tuple[str, str], ProvisionedSet] = {}
        self._owner: dict[ExecutionEnvironment, ProvisionedSet] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- configuration (control plane) ------------------------------------------------------
    def provision(
        self,
        function: str,
        qualifier: str,
        targets: Sequence[tuple[FunctionSpec, int]],
        retry: bool = False,
    ) -> None:
        """Make the configuration of ``function:qualifier`` hold ``targets``; idempotent.
        ``retry`` (the configuration was put again) clears an earlier failure."""
        wanted = {spec.pool_key: (spec, count) for spec, count in targets if count > 0}
        pset = self._sets.get((function, qualifier))
        if pset is not None and retry:
            pset.failure = None
        if pset is None:
            pset = self._sets[(function, qualifier)] = ProvisionedSet(function, qualifier)
        elif {k: c for k, (_s, c) in pset.targets.items()} == {
            k: c for k, (_s, c) in wanted.items()
        }:
            if pset.failure is None:
                self._fill(pset)
            return
        else:
            pset.failure = None
            pset.ready = False
        pset.targets = wanted
        self._trim(pset)
        self._fill(pset)

    def unprovision(self, function: str, qualifier: str | None = None) -> None:
        """Stop the environments of one configuration, or of every one of ``function``."""
        for key in [k for k in self._sets if k[0] == function and qualifier in (None, k[1])]:
            pset = self._sets.pop(key)
            pset.closed = True
            pset.targets = {}
            self._trim(pset)

    def configured(self) -> list[tuple[str, str]]:
        return list(self._sets)

    def allocated(self) -> dict[str, int]:
        """Initialized, live provisioned environments per function."""
        out: dict[str, int] = {}
        for (function, _qualifier), pset in self._sets.items():
            out[function] = out.get(function, 0) + pset.allocated
        return out

    def status(self, function: str, qualifier: str) -> ProvisionedStatus | None:
        pset = self._sets.get((function, qualifier))
        return pset.status() if pset is not None else None

    # -- invocation path --------------------------------------------------------------------
    def acquire(self, spec: FunctionSpec, qualifier: str) -> ExecutionEnvironment | None:
        """An idle provisioned environment of ``spec`` for an invocation of ``qualifier``."""
        pset = self._sets.get((spec.function_name, qualifier))
        if pset is None:
            return None
        idle = pset.idle.get(spec.pool_key)
        while idle:
            env = idle.pop()
            if env.state is State.IDLE:
                pset.busy.add(env)
                return env
        return None

    def release(self, env: ExecutionEnvironment) -> bool:
        """A provisioned environment's invocation ended: True when it is kept (idle again, or
        handed to a waiting invocation); False means the caller tears it down."""
        pset = self._owner.get(env)
        if pset is None:
            return False
        pset.busy.discard(env)
        key = env.spec.pool_key
        if pset.closed or not env.reusable or pset.live(key) >= pset.wanted(key):
            return False
        if self._offer(env, pset.qualifier):
            pset.busy.add(env)
        else:
            pset.idle.setdefault(key, []).append(env)
        return True

    def died(self, env: ExecutionEnvironment) -> None:
        """Called once an environment is destroyed; a provisioned one is replaced."""
        pset = self._owner.pop(env, None)
        if pset is None:
            return
        pset.busy.discard(env)
        pset.starting.discard(env)
        idle = pset.idle.get(env.spec.pool_key)
        if idle and env in idle:
            idle.remove(env)
        if not pset.closed and not self._closed and pset.failure is None:
            self._fill(pset)

    async def close(self) -> None:
        self._closed = True
        for pset in self._sets.values():
            pset.closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- internals ----------------------------------------------------------------------------
    def _trim(self, pset: ProvisionedSet) -> None:
        """Stop idle environments beyond what the targets want (busy ones stop when released,
        initializing ones once their INIT ends)."""
        for key, envs in list(pset.idle.items()):
            excess = pset.live(key) - pset.wanted(key)
            while envs and excess > 0:
                env = envs.pop(0)
                self._owner.pop(env, None)
                self._teardown(env)
                excess -= 1
            if not envs:
                del pset.idle[key]

    def _fill(self, pset: ProvisionedSet) -> None:
        if self._closed or pset.closed:
            return
        for key, (spec, count) in pset.targets.items():
            for _ in range(count - pset.live(key)):
                env = self._create(spec)
                env.provisioned = True
                pset.starting.add(env)
                self._owner[env] = pset
                task = asyncio.get_running_loop().create_task(self._start(pset, env))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _start(self, pset: ProvisionedSet, env: ExecutionEnvironment) -> None:
        try:
            await self._gate.enter()
            try:
                failure = None
                if not pset.closed and env.state is State.STARTING:
                    failure = await env.initialize(INIT_TYPE)
            finally:
                self._gate.leave()
        except BaseException:
            pset.starting.discard(env)
            self._owner.pop(env, None)
            self._teardown(env)
            raise
        pset.starting.discard(env)
        if failure is not None and not pset.closed and pset.failure is None:
            pset.failure = _reason(failure)
            log.warning(
                "provisioned concurrency of %s:%s failed: %s",
                pset.function,
                pset.qualifier,
                pset.failure,
            )
        kept = False
        if failure is None and not pset.closed and env.state is State.IDLE:
            pset.busy.add(env)
            kept = self.release(env)
        if not kept:
            self._owner.pop(env, None)
            self._teardown(env)
        pset.status()  # READY latches once every requested environment has initialized


def _alive(env: ExecutionEnvironment) -> bool:
    return env.state is not State.DEAD and not env.retired


def _reason(failure: tuple[str, str, bytes]) -> str:
    """StatusReason of a configuration whose INIT failed, from the INIT error."""
    status, error_type, payload = failure
    message = ""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        message = str(json.loads(payload).get("errorMessage") or "")
    if " Error: " in message:
        message = message.split(" Error: ", 1)[1]
    what = "timed out" if status == "timeout" else f"failed with {error_type}"
    return f"Initialization of the function {what}" + (f": {message}" if message else ".")
