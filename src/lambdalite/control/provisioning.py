"""Turns stored provisioned concurrency configurations into pre-initialized environments.

The configurations themselves (function → qualifier → requested count) live in the function
documents and in the limiter, which accounts for them; this service tells the data plane
which function revisions each configuration stands for and how many environments each needs.
A version names one revision; an alias names its version, or splits the count between its
two versions by their routing weights, as Lambda does.

It applies a configuration when it is put, drops it when it is deleted (or its function,
version or alias is), and re-applies every configuration at start-up and then every few
seconds: that re-creates the environments after a restart and follows an alias that was
pointed at another version, without the alias service having to know about any of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from lambdalite.control.catalog import Catalog
from lambdalite.control.invoke import InvokeService
from lambdalite.control.limiter import ConcurrencyLimiter
from lambdalite.core.arn import VERSION_RE
from lambdalite.core.errors import LambdaError
from lambdalite.invocation.model import FunctionSpec
from lambdalite.invocation.provisioned import ProvisionedStatus

log = logging.getLogger(__name__)

RECONCILE_INTERVAL = 2.0


class Provisioner(Protocol):
    """The data plane's side (``EnvironmentManager``)."""

    def provision(
        self,
        function: str,
        qualifier: str,
        targets: list[tuple[FunctionSpec, int]],
        retry: bool = False,
    ) -> None: ...

    def unprovision(self, function: str, qualifier: str | None = None) -> None: ...

    def provisioned_status(self, function: str, qualifier: str) -> ProvisionedStatus | None: ...

    def provisioned_configs(self) -> list[tuple[str, str]]: ...

    def provisioned_environments(self) -> dict[str, int]: ...

    def init_figures(self) -> tuple[int, int]: ...


def split(count: int, primary: str, weights: dict[str, float]) -> list[tuple[str, int]]:
    """``count`` environments between an alias's versions by routing weight."""
    shares = [(version, round(count * weight)) for version, weight in weights.items()]
    rest = count - sum(n for _v, n in shares)
    return [(primary, max(0, rest)), *shares]


class Provisioning:
    def __init__(
        self, catalog: Catalog, invocations: InvokeService, limiter: ConcurrencyLimiter
    ) -> None:
        self.catalog = catalog
        self.invocations = invocations
        self.limiter = limiter
        self.target: Provisioner | None = None
        self._loop_task: asyncio.Task[None] | None = None

    def attach(self, provisioner: Provisioner) -> None:
        self.target = provisioner

    # -- applying ---------------------------------------------------------------------------
    def targets(self, function: str, qualifier: str, count: int) -> list[tuple[FunctionSpec, int]]:
        """The revisions ``function:qualifier`` stands for, with their environment counts."""
        if VERSION_RE.match(qualifier):
            shares = [(qualifier, count)]
        else:
            alias = self.catalog.alias(function, qualifier).data
            weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
            shares = split(count, str(alias["FunctionVersion"]), dict(weights))
        out = []
        for version, n in shares:
            if n > 0:
                out.append((self.invocations.spec(self.catalog.version(function, version)), n))
        return out

    def apply(self, function: str, qualifier: str, retry: bool = False) -> None:
        """Bring the environments of one configuration in line with what is stored
        (``retry``: it was just put, so start over after an earlier failure)."""
        if self.target is None:
            return
        count = self.limiter.provisioned.get(function, {}).get(qualifier)
        if not count:
            self.target.unprovision(function, qualifier)
            return
        try:
            targets = self.targets(function, qualifier, count)
        except LambdaError:  # the version or alias is gone; its config goes with it
            self.target.unprovision(function, qualifier)
            return
        self.target.provision(function, qualifier, targets, retry)

    def drop(self, function: str, qualifier: str | None = None) -> None:
        if self.target is not None:
            self.target.unprovision(function, qualifier)

    def reconcile(self) -> None:
        """Apply every stored configuration; stop environments of configurations gone."""
        if self.target is None:
            return
        wanted = {(f, q) for f, configs in self.limiter.provisioned.items() for q in configs}
        for function, qualifier in self.target.provisioned_configs():
            if (function, qualifier) not in wanted:
                self.target.unprovision(function, qualifier)
        for function, qualifier in sorted(wanted):
            try:
                self.apply(function, qualifier)
            except Exception:
                log.exception("provisioning %s:%s failed", function, qualifier)

    # -- status -----------------------------------------------------------------------------
    def status(self, function: str, qualifier: str, requested: int) -> ProvisionedStatus:
        """What Get/List report; without a data plane attached the capacity is only
        accounted, and reported READY as soon as it is configured."""
        if self.target is None:
            return ProvisionedStatus(requested, requested, "READY")
        status = self.target.provisioned_status(function, qualifier)
        if status is None:  # configured, not applied yet
            return ProvisionedStatus(requested, 0, "IN_PROGRESS")
        return status

    def environments(self) -> dict[str, int]:
        """Initialized provisioned environments per function, for the live figures."""
        return self.target.provisioned_environments() if self.target is not None else {}

    def init_figures(self) -> tuple[int, int]:
        """(environments initializing, invocations waiting for an init slot)."""
        return self.target.init_figures() if self.target is not None else (0, 0)

    # -- background -------------------------------------------------------------------------
    def start(self) -> None:
        if self.target is not None and self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None

    async def _run(self) -> None:
        while True:
            self.reconcile()
            await asyncio.sleep(RECONCILE_INTERVAL)
