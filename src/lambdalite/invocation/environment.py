"""One execution environment: a runtime process, its Runtime API, and its lifecycle.

States: ``starting`` (created, INIT not finished) → ``idle`` ⇄ ``busy`` → ``dead``. INIT runs
as part of the first invocation (an on-demand cold start) and ends when the runtime first
calls ``/next``. Each invocation then ends in one of: a response, a handler error (the
environment stays warm), a response that is too large, the runtime exiting (crash or OOM), or
the deadline passing; the last two reset the environment, so the next invocation starts cold.

Log lines are emitted in the order things happened: before a platform line is written the
runtime's pipe is drained, so everything the function printed before answering appears before
``END``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lambdalite.config import Settings
from lambdalite.invocation import entrypoint
from lambdalite.invocation.model import FunctionSpec, InvokeRequest, InvokeResult, LogSink
from lambdalite.invocation.platform_log import (
    LogTail,
    PlatformLines,
    Report,
    billed_ms,
    timeout_line,
)
from lambdalite.invocation.runtime_api import RuntimeApi
from lambdalite.invocation.runtime_env import log_stream_name, sandbox_environment
from lambdalite.invocation.runtime_events import Event, InitFailure, Outcome
from lambdalite.sandbox.base import Limits, PeerSocket, Sandbox, SandboxBackend, describe_exit

log = logging.getLogger(__name__)

TOO_LARGE_MESSAGE = "Response payload size exceeded maximum allowed payload size (6291556 bytes)."


class State(enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    DEAD = "dead"


def error_payload(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def new_trace_id(now: float) -> str:
    return f"Root=1-{int(now):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


class ExecutionEnvironment:
    def __init__(
        self,
        spec: FunctionSpec,
        argv: list[str],
        settings: Settings,
        backend: SandboxBackend,
        log_sink: LogSink,
        runtime_dir: Path,
    ) -> None:
        self.env_id = secrets.token_hex(8)
        self.spec = spec
        self.argv = argv
        self.settings = settings
        self.state = State.STARTING
        self.retired = False  # set by the pool: destroy instead of reusing
        # Pre-initialized for provisioned concurrency: kept by the manager's provisioned set,
        # never reaped by keep-alive nor evicted for memory, replaced when it dies.
        self.provisioned = False
        self.init_type = "on-demand"  # AWS_LAMBDA_INITIALIZATION_TYPE of this environment
        # (init ms, failure) of an INIT run by ``initialize`` that the first invocation reports.
        self._init_result: tuple[float | None, tuple[str, str, bytes] | None] | None = None
        self.last_used = 0.0  # loop time the last invocation ended
        self.log_stream = log_stream_name(spec.version, time.time())
        self._log_group = spec.log_group
        self._backend = backend
        self._sink = log_sink
        self._runtime_dir = runtime_dir
        self._lines = PlatformLines(spec.log_format, spec.runtime, spec.region, spec.version)
        self._loop = asyncio.get_running_loop()
        self._api: RuntimeApi | None = None
        self._sandbox: Sandbox | None = None
        self._exited: asyncio.Future[int] | None = None
        self._tail: LogTail | None = None
        self._init_tail: LogTail | None = None  # INIT lines for the first invocation's tail
        self._destroying: asyncio.Task[None] | None = None
        self._init_ended = 0.0  # perf_counter() when INIT ended, however it ended
        self.on_dead: Callable[[ExecutionEnvironment], None] | None = None

    @property
    def pid(self) -> int | None:
        return self._sandbox.pid if self._sandbox else None

    @property
    def reusable(self) -> bool:
        return self.state is State.IDLE and not self.retired

    # -- logging ------------------------------------------------------------------------------
    def _emit(self, line: str) -> None:
        try:
            self._sink.emit(self._log_group, self.log_stream, int(time.time() * 1000), line)
        except Exception:
            log.exception("log sink failed")
        if self._tail is not None:
            self._tail.add(line)

    def _drain(self) -> None:
        if self._sandbox is not None:
            self._sandbox.drain(flush_partial=True)

    # -- invocation ---------------------------------------------------------------------------
    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        """Run one event; never raises for anything the function does."""
        if self.state not in (State.STARTING, State.IDLE):
            raise RuntimeError(f"environment {self.env_id} is {self.state.value}")
        self.state = State.BUSY
        self._tail = (self._init_tail or LogTail()) if request.tail_logs else None
        self._init_tail = None
        try:
            if self._init_result is None:
                await self.initialize("on-demand", request.request_id)
            assert self._init_result is not None
            init_ms, failure = self._init_result
            self._init_result = (None, None)  # reported once, by the first invocation
            if failure is not None:
                return self._init_failed(request, init_ms or 0.0, *failure)
            return await self._run(request, init_ms)
        finally:
            self._tail = None
            self.last_used = self._loop.time()

    async def initialize(
        self, init_type: str = "on-demand", request_id: str = "", ahead: bool | None = None
    ) -> tuple[str, str, bytes] | None:
        """Run INIT now, without an invocation; on failure (status, error type, payload).

        ``init_type`` is what the runtime is told (AWS_LAMBDA_INITIALIZATION_TYPE). An INIT
        on the way to an invocation (on-demand by default) is reused by it: its REPORT
        carries the Init Duration (or it reports the failure). An INIT ahead of any
        invocation (provisioned by default, or a pre-warm) is reported on its own here
        (INIT_REPORT), leaves the environment idle, and its invocations never carry an Init
        Duration.
        """
        if self._init_result is not None:
            raise RuntimeError(f"environment {self.env_id} was already initialized")
        if ahead is None:
            ahead = init_type != "on-demand"
        self._init_result = (None, None)
        self.init_type = init_type
        started = time.perf_counter()
        own_tail = self._tail is None and not ahead
        if own_tail:  # ahead of its invocation: keep the INIT lines for its log tail
            self._tail = LogTail()
        try:
            failure = await self._initialize(request_id)
        finally:
            if own_tail:
                self._init_tail, self._tail = self._tail, None
        init_ms = (self._init_ended - started) * 1000
        if not ahead:
            self._init_result = (init_ms, failure)
            return failure
        self._init_result = (None, failure)
        status = "success" if failure is None else failure[0]
        error_type = failure[1] if failure is not None and status != "timeout" else None
        self._emit(self._lines.init_report(time.time(), init_ms, status, error_type, init_type))
        if failure is None and self.state is State.STARTING:
            self.state = State.IDLE
            self.last_used = self._loop.time()
        elif failure is not None:
            self.state = State.DEAD
        return failure

    async def _initialize(self, request_id: str) -> tuple[str, str, bytes] | None:
        """Start the runtime and wait for INIT to end; on failure (status, type, payload)."""
        spec = self.spec
        backend = self._backend
        # Connections are only accepted from this environment's own sandbox (which does not
        # exist yet: until it does, nobody is).
        api = self._api = RuntimeApi(self.settings.runtime_api_host, accept=self._owns)
        # A sandbox with a network of its own brings its listener (at a fixed address);
        # otherwise the Runtime API listens on the host, on a free port.
        fixed_address = backend.runtime_api_address
        address = fixed_address or await api.start()
        self._init_ended = time.perf_counter()
        if self._destroying is not None:  # shut down while the listener was starting
            await api.close()
            message = f"RequestId: {request_id} Error: Environment was shut down"
            return ("error", "Sandbox.Failure", error_payload("Sandbox.Failure", message))
        layout = backend.layout(spec.code_dir, self._runtime_dir, spec.opt_dir)
        env = sandbox_environment(
            spec, backend, self._runtime_dir, self.argv, address, self.log_stream, self.init_type
        )
        if spec.runtime:  # container images have no managed runtime version to announce
            self._emit(self._lines.init_start(time.time(), spec.function_name, self.init_type))
        limits = Limits(memory_mb=spec.memory_mb, ephemeral_mb=spec.ephemeral_mb)
        try:
            # A custom runtime's bootstrap; the extension launcher in front when there are any.
            argv, on_output = entrypoint.prepare(
                api, spec, self.argv, env, layout, self._emit_output, self._emit, self._drain
            )
            sandbox = backend.spawn(
                argv,
                env,
                spec.code_dir,
                limits,
                on_output,
                label=self.env_id,
                runtime_dir=self._runtime_dir,
                opt_dir=spec.opt_dir,
            )
        except OSError as exc:
            message = f"RequestId: {request_id} Error: {exc}"
            self._emit(f"{message}\nRuntime.InvalidEntrypoint")
            return (
                "error",
                "Runtime.InvalidEntrypoint",
                error_payload("Runtime.InvalidEntrypoint", message),
            )
        self._sandbox = sandbox
        self._exited = self._loop.create_task(sandbox.wait())
        self._exited.add_done_callback(self._on_exit)
        serving = None
        if fixed_address is not None:
            serving = self._loop.create_task(self._serve_sandbox_listener(api, sandbox, address))
        waits: list[asyncio.Future[Any]] = [api.ready, api.init_failed, self._exited]
        await asyncio.wait(waits, timeout=self.settings.init_timeout, return_when="FIRST_COMPLETED")
        if serving is not None and not serving.done():
            serving.cancel()
        self._init_ended = time.perf_counter()
        if api.ready.done():
            self._drain()
            return None
        if api.init_failed.done():
            failure: InitFailure = api.init_failed.result()
            # The runtime exits after reporting; give it a moment so its last words are logged.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exited), 0.5)
            self._drain()
            payload = failure.body or error_payload(failure.error_type, "Initialization failed")
            return ("error", failure.error_type, payload)
        if self._exited.done():
            self._drain()
            error_type, payload = self._exit_error(request_id)
            return ("error", error_type, payload)
        sandbox.kill()
        self._drain()
        message = (
            f"RequestId: {request_id} Error: "
            f"Task timed out after {self.settings.init_timeout:.2f} seconds"
        )
        return ("timeout", "Sandbox.Timedout", error_payload("Sandbox.Timedout", message))

    def _owns(self, conn: PeerSocket) -> bool:
        return self._sandbox is not None and self._sandbox.owns_connection(conn)

    @staticmethod
    async def _serve_sandbox_listener(api: RuntimeApi, sandbox: Sandbox, address: str) -> None:
        """Serve the listening socket the sandbox made in its own network namespace (until
        it does, the runtime cannot connect; a sandbox that never does times out INIT)."""
        try:
            sock = await sandbox.runtime_api_socket()
            if sock is not None:
                await api.start(sock=sock, address=address)
        except Exception:
            log.exception("cannot serve the Runtime API of an isolated sandbox")

    def _init_failed(
        self, request: InvokeRequest, init_ms: float, status: str, error_type: str, payload: bytes
    ) -> InvokeResult:
        self._emit(
            self._lines.init_report(
                time.time(), init_ms, status, None if status == "timeout" else error_type
            )
        )
        self.state = State.DEAD
        self._emit(self._lines.start(time.time(), request.request_id))
        report = Report(
            request.request_id,
            init_ms,
            billed_ms(init_ms),
            self.spec.memory_mb,
            self._memory_used(),
            status=status,
            error_type=error_type,
        )
        return self._finish(request, report, payload, error_type, init_ms=init_ms)

    async def _run(self, request: InvokeRequest, init_ms: float | None) -> InvokeResult:
        api, sandbox, exited = self._api, self._sandbox, self._exited
        assert api is not None and sandbox is not None and exited is not None
        spec = self.spec
        now = time.time()
        self._emit(self._lines.start(now, request.request_id))
        started = time.perf_counter()
        event = Event(
            request_id=request.request_id,
            payload=request.payload or b"{}",
            deadline_ms=int(now * 1000) + spec.timeout_s * 1000,
            invoked_arn=request.invoked_arn,
            trace_id=request.trace_id or new_trace_id(now),
            client_context=request.client_context,
            cognito_identity=request.cognito_identity,
            sink=request.sink,
        )
        outcome = api.submit(event)
        await api.wait_answer(outcome, exited, spec.timeout_s)
        duration = (time.perf_counter() - started) * 1000
        if outcome.done():
            self._drain()
            return self._answered(request, outcome.result(), duration, init_ms)
        if exited.done():
            self._drain()
            self.state = State.DEAD
            error_type, payload = self._exit_error(request.request_id)
            self._emit(json.loads(payload)["errorMessage"] + "\n" + error_type)
            report = self._report(request, duration, init_ms, "error", error_type)
            return self._finish(request, report, payload, error_type, init_ms)
        if api.extensions is not None:
            await api.extensions.shutdown("timeout")  # the reset, up to 2 s
        sandbox.kill()
        self._drain()
        self.state = State.DEAD
        self._emit(timeout_line(time.time(), request.request_id, spec.timeout_s))
        message = (
            f"RequestId: {request.request_id} Error: "
            f"Task timed out after {spec.timeout_s:.2f} seconds"
        )
        report = self._report(
            request, spec.timeout_s * 1000.0, init_ms, "timeout", "Sandbox.Timedout"
        )
        payload = error_payload("Sandbox.Timedout", message)
        return self._finish(request, report, payload, "Sandbox.Timedout", init_ms)

    def _answered(
        self, request: InvokeRequest, outcome: Outcome, duration: float, init_ms: float | None
    ) -> InvokeResult:
        if self.state is State.BUSY:
            self.state = State.IDLE
        if outcome.kind == "response":
            report = self._report(request, duration, init_ms)
            return self._finish(request, report, outcome.body, None, init_ms, outcome.content_type)
        if outcome.kind == "error":
            # A handler error is the function's business: no Status field, environment kept.
            report = self._report(request, duration, init_ms)
            return self._finish(request, report, outcome.body, outcome.error_type, init_ms)
        error_type = "Function.ResponseSizeTooLarge"
        report = self._report(request, duration, init_ms, "error", error_type)
        payload = error_payload(error_type, TOO_LARGE_MESSAGE)
        return self._finish(request, report, payload, error_type, init_ms)

    def _exit_error(self, request_id: str) -> tuple[str, bytes]:
        sandbox = self._sandbox
        assert sandbox is not None
        status = sandbox.exit_status()
        reason = describe_exit(status if status is not None else -9)
        error_type = "Runtime.OutOfMemory" if sandbox.oom_killed() else "Runtime.ExitError"
        message = f"RequestId: {request_id} Error: Runtime exited with error: {reason}"
        return error_type, error_payload(error_type, message)

    def _memory_used(self, oom: bool = False) -> int:
        if self._sandbox is None:
            return 0
        if oom or self._sandbox.oom_killed():
            return self.spec.memory_mb
        return min(self._sandbox.memory_peak_mb(), self.spec.memory_mb)

    def _report(
        self,
        request: InvokeRequest,
        duration: float,
        init_ms: float | None,
        status: str = "success",
        error_type: str | None = None,
    ) -> Report:
        return Report(
            request.request_id,
            duration,
            billed_ms(duration, init_ms),
            self.spec.memory_mb,
            self._memory_used(error_type == "Runtime.OutOfMemory"),
            init_ms,
            status,
            error_type,
        )

    def _finish(
        self,
        request: InvokeRequest,
        report: Report,
        payload: bytes,
        error_type: str | None,
        init_ms: float | None,
        content_type: str = "application/json",
    ) -> InvokeResult:
        now = time.time()
        self._emit(self._lines.end(now, report))
        self._emit(self._lines.report(now, report))
        tail = self._tail.encoded() if self._tail is not None else None
        return InvokeResult(
            payload=payload,
            function_error="Unhandled" if error_type else None,
            error_type=error_type,
            content_type=content_type,
            log_tail=tail,
            duration_ms=round(report.duration_ms, 2),
            billed_ms=report.billed_ms,
            max_memory_mb=report.max_memory_mb,
            init_duration_ms=round(init_ms, 2) if init_ms is not None else None,
            log_stream=self.log_stream,
        )

    # -- teardown -----------------------------------------------------------------------------
    def _emit_output(self, line: str) -> None:
        self._emit(line)

    def _on_exit(self, _: asyncio.Future[int]) -> None:
        # A runtime that dies between invocations leaves a dead environment behind.
        if self.state is State.IDLE:
            self.state = State.DEAD
            self._loop.create_task(self.destroy())

    async def destroy(self) -> None:
        """Kill the runtime and everything it started, close the listener. Idempotent."""
        if self._destroying is None:
            self.state = State.DEAD
            self._destroying = self._loop.create_task(self._destroy())
        await asyncio.shield(self._destroying)

    async def _destroy(self) -> None:
        try:
            if self._sandbox is not None:
                if self._api is not None and self._api.extensions is not None:
                    await self._api.extensions.shutdown()  # SHUTDOWN, up to 2 s
                self._sandbox.kill()
                await self._sandbox.destroy()
            if self._api is not None:
                await self._api.close()
        except Exception:
            log.exception("destroying environment %s failed", self.env_id)
        finally:
            if self.on_dead is not None:
                self.on_dead(self)
