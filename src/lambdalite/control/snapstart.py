"""SnapStart in the control plane: validation, version states, when snapshots are made.

``SnapStart: {ApplyOn: PublishedVersions}`` on a function makes every version published from
it go through a snapshot: PublishVersion answers with the version ``Pending``, the snapshot is
made in the background (the invocation side initializes the version once and keeps it as a
template, see ``invocation.snapshots``), and the version becomes ``Active`` or ``Failed``
(with ``StateReasonCode``), so clients wait for it exactly as on Lambda (the
``function_active_v2`` waiter). ``OptimizationStatus`` is ``On`` only on such published
versions; ``$LATEST`` always shows ``Off`` and is never snapshotted.

The state of a version is kept in its stored configuration under ``SnapStartState`` (a member
the renderer does not copy), since a version's configuration is otherwise immutable.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any

from lambdalite.control.catalog import VERSION, Resolved
from lambdalite.control.deps import Deps
from lambdalite.core.arn import LATEST
from lambdalite.core.errors import (
    InvalidParameterValueException,
    ResourceConflictException,
    SnapStartException,
    SnapStartNotReadyException,
    SnapStartTimeoutException,
)
from lambdalite.invocation.model import InvokeResult
from lambdalite.invocation.snapshots import RESTORE_OUTCOME, SnapshotResult, SnapshotStore

if TYPE_CHECKING:
    from lambdalite.control.invoke import InvokeService

log = logging.getLogger(__name__)

STATE = "SnapStartState"
PUBLISHED_VERSIONS = "PublishedVersions"
AFTER_RESTORE_ERROR = "Runtime.AfterRestoreError"
_SUPPORTED = (  # runtime family and the first version SnapStart supports (as on Lambda)
    (re.compile(r"python3\.(\d+)"), 12),
    (re.compile(r"java(\d+)"), 11),
    (re.compile(r"dotnet(\d+)"), 8),
)


def supports_snapstart(runtime: str) -> bool:
    for pattern, first in _SUPPORTED:
        match = pattern.fullmatch(runtime)
        if match:
            return int(match.group(1)) >= first
    return False


def applies(config: dict[str, Any]) -> bool:
    """Whether published versions of this configuration are snapshotted."""
    return (config.get("SnapStart") or {}).get("ApplyOn") == PUBLISHED_VERSIONS


def check_config(config: dict[str, Any]) -> None:
    """Reject SnapStart on runtimes Lambda does not offer it for (``config`` is the whole
    resulting configuration, so changing the runtime of a SnapStart function is checked too)."""
    runtime = config.get("Runtime")
    if applies(config) and runtime and not supports_snapstart(runtime):
        raise InvalidParameterValueException(
            f"{runtime} is not supported for SnapStart enabled functions."
        )


def render(out: dict[str, Any], resolved: Resolved) -> None:
    """The SnapStart members of a rendered FunctionConfiguration, and the version's state."""
    config = resolved.config
    apply_on = (config.get("SnapStart") or {}).get("ApplyOn", "None")
    snapshotted = resolved.version != LATEST and apply_on == PUBLISHED_VERSIONS
    out["SnapStart"] = {"ApplyOn": apply_on, "OptimizationStatus": "On" if snapshotted else "Off"}
    state = config.get(STATE)
    if snapshotted and isinstance(state, dict):
        out["State"] = state.get("State", "Active")
        for member in ("StateReason", "StateReasonCode"):
            if state.get(member):
                out[member] = state[member]


class SnapStartService:
    """Makes snapshots of published versions and guards invocations of them."""

    def __init__(self, deps: Deps, invocations: InvokeService) -> None:
        self.deps = deps
        self.catalog = deps.catalog
        self.invocations = invocations
        store = getattr(deps.invoker, "snapshots", None)
        self.store = store if isinstance(store, SnapshotStore) else None
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    # -- publishing -----------------------------------------------------------------------
    def freeze(self, frozen: dict[str, Any]) -> None:
        """A version is being published from ``frozen``: it starts ``Pending`` if snapshotted."""
        frozen.pop(STATE, None)
        if applies(frozen):
            frozen[STATE] = {
                "State": "Pending",
                "StateReason": "The function is being created.",
                "StateReasonCode": "Creating",
            }

    def published(self, name: str, number: str) -> None:
        """Make the snapshot of a new version in the background."""
        resolved = self.catalog.version(name, number)
        if applies(resolved.config):
            self._start(name, number)

    def _start(self, name: str, number: str) -> None:
        key = (name, number)
        if key in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(self._snapshot(name, number))
        self._tasks[key] = task
        task.add_done_callback(lambda _: self._tasks.pop(key, None))

    async def _snapshot(self, name: str, number: str) -> None:
        try:
            resolved = self.catalog.version(name, number)
            result = await self._prepare(resolved)
            if not self._settle(name, number, result) and self.store is not None:
                await self.store.drop(name, number)  # deleted while its snapshot was made
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("making the snapshot of %s:%s failed", name, number)

    async def _prepare(self, resolved: Resolved) -> SnapshotResult:
        if self.store is None:
            return SnapshotResult(False, "Sandbox.Failure", "SnapStart is not available")
        why = self.store.available
        if why:
            return SnapshotResult(False, "Sandbox.Failure", why)
        return await self.store.prepare(self.invocations.spec(resolved))

    def _settle(self, name: str, number: str, result: SnapshotResult) -> bool:
        """Record how the snapshot ended; False when the version is gone."""
        vdoc = self.catalog.child(VERSION, name, number)
        if vdoc is None:
            return False
        if result.ok:
            state: dict[str, Any] = {"State": "Active"}
        else:
            code = "FunctionError.InitTimeout" if result.timed_out else "FunctionError"
            if result.error_type == "Sandbox.Failure":
                code = "InternalError"
            reason = f"{result.error_type}: {result.message}" if result.message else code
            state = {"State": "Failed", "StateReason": reason[:1000], "StateReasonCode": code}
        data = dict(vdoc.data)
        data["config"] = {**data["config"], STATE: state}
        self.catalog.put_child(VERSION, name, number, data, expect=vdoc.revision)
        return True

    # -- invoking -------------------------------------------------------------------------
    async def before_invoke(self, resolved: Resolved) -> None:
        """Refuse versions whose snapshot is not ready; make it again when it was lost (the
        server restarted): the invocation then restores from it like any other."""
        if resolved.version == LATEST or not applies(resolved.config):
            return
        state = resolved.config.get(STATE) or {}
        current = state.get("State", "Active")
        if current == "Pending":
            name = resolved.function.key
            if (name, resolved.version) not in self._tasks:
                self._start(name, resolved.version)  # interrupted by a restart
            raise SnapStartNotReadyException(
                "Lambda is initializing your function. You can invoke the function when the "
                "function state becomes Active."
            )
        if current == "Failed":
            raise ResourceConflictException(
                "The operation cannot be performed at this time. The function is currently in "
                "the following state: Failed"
            )
        if self.store is None or self.store.available:
            return
        spec = self.invocations.spec(resolved)
        if not self.store.ready(spec):
            result = await self.store.prepare(spec)
            if not result.ok:
                log.warning(
                    "could not make the snapshot of %s:%s again (%s: %s); starting on demand",
                    spec.function_name,
                    spec.version,
                    result.error_type,
                    result.message,
                )

    @staticmethod
    def after_invoke(result: InvokeResult) -> None:
        """A restore whose after-restore hook failed is the caller's SnapStartException, one
        that did not finish in time (10 s, as on Lambda) a SnapStartTimeoutException."""
        if result.extra.get(RESTORE_OUTCOME) == "timeout":
            raise SnapStartTimeoutException(
                "Lambda couldn't restore the snapshot within the timeout limit.", Type="User"
            )
        if result.error_type == AFTER_RESTORE_ERROR:
            raise SnapStartException(
                "The afterRestore() runtime hook encountered an error. For more information, "
                "check the Amazon CloudWatch logs.",
                Type="User",
            )

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
