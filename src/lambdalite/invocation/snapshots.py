"""SnapStart on the invocation side: one template per published version, restored copies.

``SnapshotStore.prepare`` makes the "snapshot" of a version: it starts the version's runtime
once as a template (``sandbox.template``) with ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``
and waits until the runtime has imported the handler, run the before-snapshot hooks and called
``/runtime/restore/next``. The template then stays alive, initialized and idle, as the
snapshot itself: a restore is a fork of it. An environment of that version that the manager
starts afterwards is a ``RestoredEnvironment``: an ordinary execution environment whose
sandbox comes from the template instead of a fresh interpreter, so its start is the fork, the
new environment's variables and the after-restore hooks, with ``RESTORE_START`` /
``RESTORE_REPORT`` and a REPORT carrying ``Restore Duration`` instead of ``Init Duration``.

Templates live in memory: after a server restart the control plane makes them again the
first time a version is invoked. Nothing here knows about the API or the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambdalite.config import Settings
from lambdalite.invocation.environment import ExecutionEnvironment
from lambdalite.invocation.model import FunctionSpec, InvokeRequest, InvokeResult, LogSink
from lambdalite.invocation.platform_log import PlatformLines, RestoreLines
from lambdalite.invocation.runtime_api import RuntimeApi
from lambdalite.invocation.runtime_env import log_stream_name, runtime_argv, sandbox_environment
from lambdalite.sandbox.base import Layout, Limits, OutputCallback, PeerSocket, SandboxBackend
from lambdalite.sandbox.namespace import NamespaceSandboxBackend
from lambdalite.sandbox.namespace_restored import RestoredNamespaceSandbox
from lambdalite.sandbox.namespace_template import NamespaceTemplate, spawn_namespace_template
from lambdalite.sandbox.process import ProcessSandboxBackend
from lambdalite.sandbox.template import (
    RestoredSandbox,
    TemplateSandbox,
    TemplateUnsupported,
    spawn_template,
)

log = logging.getLogger(__name__)

SNAP_START = "snap-start"
# ``InvokeResult.extra`` key set to "timeout" when a restore did not finish in time.
RESTORE_OUTCOME = "snapstart-restore"
INIT_TYPE_VARIABLE = "AWS_LAMBDA_INITIALIZATION_TYPE"
# Lambda gives the INIT of a snapshot the function's timeout, but at least this long.
MIN_SNAPSHOT_INIT_S = 130.0

CommandFor = Callable[[FunctionSpec], list[str]]


@dataclass(frozen=True)
class SnapshotResult:
    """How making a version's snapshot ended."""

    ok: bool
    error_type: str = ""
    message: str = ""
    timed_out: bool = False


class Template:
    """The server's handle on one template: its Runtime API (used for INIT only), its logs."""

    def __init__(
        self,
        spec: FunctionSpec,
        argv: list[str],
        settings: Settings,
        backend: SandboxBackend,
        sink: LogSink,
        runtime_dir: Path,
    ) -> None:
        self.spec = spec
        self._argv = argv
        self._settings = settings
        self._backend = backend
        self._sink = sink
        self._runtime_dir = runtime_dir
        self.log_stream = log_stream_name(spec.version, time.time())
        self._lines = PlatformLines(spec.log_format, spec.runtime, spec.region, spec.version)
        self._api: RuntimeApi | None = None
        self.sandbox: TemplateSandbox | NamespaceTemplate | None = None
        self._serving: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.sandbox is not None and not self.sandbox.gone

    def _emit(self, line: str) -> None:
        try:
            self._sink.emit(self.spec.log_group, self.log_stream, int(time.time() * 1000), line)
        except Exception:
            log.exception("log sink failed")

    async def start(self) -> SnapshotResult:
        """Run INIT and the before-snapshot hooks; the template is usable when ``ok``."""
        spec, backend = self.spec, self._backend
        if not isinstance(backend, ProcessSandboxBackend):
            return SnapshotResult(False, "Sandbox.Failure", "SnapStart is not available here")
        api = self._api = RuntimeApi(
            self._settings.runtime_api_host, accept=self._owns, snapstart=True
        )
        # An isolated sandbox brings its own listener, at a fixed address (as environments do).
        fixed_address = backend.runtime_api_address
        address = fixed_address or await api.start()
        env = sandbox_environment(
            spec, backend, self._runtime_dir, self._argv, address, self.log_stream, SNAP_START
        )
        self._emit(self._lines.init_start(time.time(), spec.function_name, SNAP_START))
        started = time.perf_counter()
        limits = Limits(memory_mb=spec.memory_mb, ephemeral_mb=spec.ephemeral_mb)
        try:
            sandbox: TemplateSandbox | NamespaceTemplate
            if isinstance(backend, NamespaceSandboxBackend):
                sandbox = spawn_namespace_template(
                    backend,
                    self._argv,
                    env,
                    spec.code_dir,
                    limits,
                    self._emit,
                    label="snap",
                    runtime_dir=self._runtime_dir,
                    opt_dir=spec.opt_dir,
                )
            else:
                sandbox = spawn_template(
                    backend, self._argv, env, spec.code_dir, limits, self._emit, label="snap"
                )
            self.sandbox = sandbox
        except (OSError, TemplateUnsupported) as exc:
            return self._failed(started, "error", "Runtime.InvalidEntrypoint", str(exc))
        if fixed_address is not None:
            self._serving = asyncio.ensure_future(self._serve_listener(api, fixed_address))
        exited = asyncio.ensure_future(sandbox.wait())
        timeout = max(MIN_SNAPSHOT_INIT_S, float(spec.timeout_s))
        waits: list[asyncio.Future[Any]] = [api.ready, api.init_failed, exited]
        await asyncio.wait(waits, timeout=timeout, return_when="FIRST_COMPLETED")
        sandbox.drain(flush_partial=True)
        if api.ready.done() and not api.init_failed.done():
            serving: list[asyncio.Future[Any]] = [sandbox.serving, exited]
            await asyncio.wait(serving, timeout=2.0, return_when="FIRST_COMPLETED")
            if not sandbox.serving.done():
                exited.cancel()
                message = "the runtime client does not support SnapStart (no snapshot point)"
                return self._failed(started, "error", "Runtime.InvalidEntrypoint", message)
            exited.cancel()
            sandbox.keep_standby(limits)
            init_ms = (time.perf_counter() - started) * 1000
            self._emit(self._lines.init_report(time.time(), init_ms, "success", None, SNAP_START))
            return SnapshotResult(True)
        if api.init_failed.done():
            failure = api.init_failed.result()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(exited), 0.5)
            sandbox.drain(flush_partial=True)
            return self._failed(started, "error", failure.error_type, _message(failure.body))
        if exited.done():
            code = exited.result()
            return self._failed(
                started, "error", "Runtime.ExitError", f"Runtime exited with status {code}"
            )
        exited.cancel()
        return self._failed(
            started, "timeout", "Sandbox.Timedout", f"INIT timed out after {timeout:.2f} seconds"
        )

    def _owns(self, conn: PeerSocket) -> bool:
        return self.sandbox is not None and self.sandbox.owns_connection(conn)

    async def _serve_listener(self, api: RuntimeApi, address: str) -> None:
        """Serve the listener the template's sandbox made in its own network namespace."""
        assert self.sandbox is not None
        try:
            sock = await self.sandbox.runtime_api_socket()
            if sock is not None:
                await api.start(sock=sock, address=address)
        except Exception:
            log.exception("cannot serve the Runtime API of a SnapStart template")

    def _failed(self, started: float, status: str, error_type: str, message: str) -> SnapshotResult:
        init_ms = (time.perf_counter() - started) * 1000
        shown = None if status == "timeout" else error_type
        self._emit(self._lines.init_report(time.time(), init_ms, status, shown, SNAP_START))
        return SnapshotResult(False, error_type, message, timed_out=status == "timeout")

    def fork(
        self, env: Mapping[str, str], on_output: OutputCallback, limits: Limits, label: str
    ) -> RestoredSandbox | RestoredNamespaceSandbox:
        if self.sandbox is None:
            raise OSError("the SnapStart template was never started")
        return self.sandbox.fork({**env, INIT_TYPE_VARIABLE: SNAP_START}, on_output, limits, label)

    async def destroy(self) -> None:
        try:
            if self._serving is not None:
                self._serving.cancel()
            if self.sandbox is not None:
                self.sandbox.kill()
                await self.sandbox.destroy()
            if self._api is not None:
                await self._api.close()
        except Exception:
            log.exception("destroying the SnapStart template of %s failed", self.spec.version)


def _message(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")[:500]
    if isinstance(doc, dict):
        return str(doc.get("errorMessage") or doc.get("errorType") or "")
    return ""


class _ForkBackend:
    """The sandbox backend of a restored environment: ``spawn`` forks the template."""

    def __init__(self, template: Template, real: SandboxBackend) -> None:
        self._template = template
        self._real = real

    def spawn(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        limits: Limits,
        on_output: OutputCallback,
        label: str = "",
        runtime_dir: Path | None = None,
        opt_dir: Path | None = None,
    ) -> RestoredSandbox | RestoredNamespaceSandbox:
        return self._template.fork(env, on_output, limits, label)

    def layout(self, code_dir: Path, runtime_dir: Path, opt_dir: Path | None = None) -> Layout:
        return self._real.layout(code_dir, runtime_dir, opt_dir)

    @property
    def runtime_api_address(self) -> str | None:
        return self._real.runtime_api_address

    @property
    def isolation(self) -> str:
        return self._real.isolation

    async def close(self) -> None:
        return None  # the real backend is closed by its owner


class RestoredEnvironment(ExecutionEnvironment):
    """An execution environment started by restoring its version's snapshot."""

    def __init__(
        self,
        spec: FunctionSpec,
        argv: list[str],
        settings: Settings,
        backend: SandboxBackend,
        sink: LogSink,
        runtime_dir: Path,
        template: Template,
    ) -> None:
        super().__init__(spec, argv, settings, _ForkBackend(template, backend), sink, runtime_dir)
        self._lines = RestoreLines(spec.log_format, spec.runtime, spec.region, spec.version)

    # The Runtime API of a restored environment serves /runtime/restore/* too.
    @property
    def _api(self) -> RuntimeApi | None:
        return self._restored_api

    @_api.setter
    def _api(self, api: RuntimeApi | None) -> None:
        if api is not None:
            api.snapstart = True
        self._restored_api = api

    def _init_failed(
        self, request: InvokeRequest, init_ms: float, status: str, error_type: str, payload: bytes
    ) -> InvokeResult:
        result = super()._init_failed(request, init_ms, status, error_type, payload)
        if status == "timeout":  # the restore, not the function, ran out of time
            result.extra[RESTORE_OUTCOME] = "timeout"
        return result

    async def initialize(
        self, init_type: str = "on-demand", request_id: str = "", ahead: bool | None = None
    ) -> tuple[str, str, bytes] | None:
        failure = await super().initialize(init_type, request_id, ahead)
        pending = self._init_result
        if failure is None and pending is not None and pending[0] is not None:
            # An on-demand start reports in its first REPORT; the restore is logged now too.
            self._emit(self._lines.init_report(time.time(), pending[0], "success"))
        self.init_type = SNAP_START
        return failure


class SnapshotStore:
    """The templates of published SnapStart versions, keyed by (function, version)."""

    def __init__(
        self,
        settings: Settings,
        sink: LogSink,
        backend: SandboxBackend,
        command_for: CommandFor,
        runtime_dir: Path,
    ) -> None:
        self._settings = settings
        self._sink = sink
        self._backend = backend
        self._command_for = command_for
        self._runtime_dir = runtime_dir
        self._templates: dict[tuple[str, str], Template] = {}
        self._making: dict[tuple[str, str], asyncio.Task[SnapshotResult]] = {}

    @property
    def available(self) -> str:
        """Empty when this server can restore from snapshots, else why it cannot."""
        if not isinstance(self._backend, ProcessSandboxBackend):  # namespace ones included
            return "SnapStart restores need the process or the namespace sandbox"
        return ""

    def ready(self, spec: FunctionSpec) -> bool:
        template = self._templates.get((spec.function_name, spec.version))
        return template is not None and template.alive

    async def prepare(self, spec: FunctionSpec) -> SnapshotResult:
        """Make (or make again) the snapshot of ``spec``'s version; concurrent calls share."""
        key = (spec.function_name, spec.version)
        task = self._making.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._make(key, spec))
            self._making[key] = task
            task.add_done_callback(lambda _: self._making.pop(key, None))
        return await asyncio.shield(task)

    async def _make(self, key: tuple[str, str], spec: FunctionSpec) -> SnapshotResult:
        why = self.available
        if why:
            return SnapshotResult(False, "Sandbox.Failure", why)
        argv = runtime_argv(spec, self._command_for(spec))
        template = Template(
            spec, argv, self._settings, self._backend, self._sink, self._runtime_dir
        )
        try:
            result = await template.start()
        except Exception as exc:
            log.exception("making the snapshot of %s:%s failed", *key)
            result = SnapshotResult(False, "Sandbox.Failure", str(exc))
        if not result.ok:
            await template.destroy()
            return result
        old = self._templates.get(key)
        self._templates[key] = template
        if old is not None:
            await old.destroy()
        return result

    def restored(self, spec: FunctionSpec, argv: list[str]) -> RestoredEnvironment | None:
        """A new environment restored from ``spec``'s snapshot; None when there is none."""
        template = self._templates.get((spec.function_name, spec.version))
        if template is None or not template.alive:
            return None
        return RestoredEnvironment(
            spec, argv, self._settings, self._backend, self._sink, self._runtime_dir, template
        )

    async def drop(self, function_name: str, version: str | None = None) -> None:
        """Forget the snapshots of a function (or of one version of it)."""
        keys = [k for k in self._templates if k[0] == function_name and version in (None, k[1])]
        await asyncio.gather(*(self._templates.pop(k).destroy() for k in keys))

    async def close(self) -> None:
        for task in list(self._making.values()):
            task.cancel()
        await asyncio.gather(*list(self._making.values()), return_exceptions=True)
        templates, self._templates = list(self._templates.values()), {}
        await asyncio.gather(*(t.destroy() for t in templates))
