"""What the control plane hands the invocation path, and what it gets back.

These types carry no API or storage concepts: a ``FunctionSpec`` is everything needed to start
an execution environment for one published version (or ``$LATEST``), an ``InvokeRequest`` one
event, and an ``InvokeResult`` what the caller of Invoke sees plus the figures of the REPORT line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ImageLaunch:
    """How a container image function starts: its image's merged tree is the sandbox's root
    file system, and the image (with the function's ``ImageConfig``) says what runs there."""

    rootfs: Path  # host path of the merged, read-only tree
    argv: tuple[str, ...]  # ENTRYPOINT + CMD, after ImageConfig's overrides
    workdir: str  # inside the image
    env: Mapping[str, str]  # the image's ENV; the function's variables go on top


@dataclass(frozen=True)
class FunctionSpec:
    function_name: str
    version: str  # "$LATEST" or a version number
    function_arn: str  # unqualified
    runtime: str  # "python3.11", ...
    handler: str
    code_dir: Path  # unpacked deployment package, read-only
    memory_mb: int
    timeout_s: int
    ephemeral_mb: int
    environment: Mapping[str, str]  # the function's own variables
    # Changes whenever code or configuration of this version changes: environments started
    # for another revision are never reused.
    revision: str
    region: str
    account_id: str
    log_format: str = "Text"
    log_level: str | None = None
    architectures: tuple[str, ...] = ("x86_64",)
    # The function's layers merged into one read-only tree (later layers win), shown at /opt.
    opt_dir: Path | None = None
    # Set for container image functions (PackageType Image): the image is the root instead.
    image: ImageLaunch | None = None

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def pool_key(self) -> tuple[str, str, str]:
        return (self.function_name, self.version, self.revision)


@dataclass(frozen=True)
class InvokeRequest:
    request_id: str
    payload: bytes
    invoked_arn: str
    client_context: str | None = None  # decoded JSON text
    cognito_identity: str | None = None  # JSON text
    trace_id: str | None = None
    tail_logs: bool = False
    # Receives a streamed response's bytes as the runtime sends them (the result's payload is
    # then only what was not streamed); without it a streamed response is collected whole.
    sink: ResponseSink | None = field(default=None, compare=False)


@dataclass(frozen=True)
class InvokeResult:
    payload: bytes
    # "Unhandled" when the function failed (the HTTP status stays 200), else None.
    function_error: str | None = None
    error_type: str | None = None  # "Sandbox.Timedout", "Runtime.ExitError", "ValueError", ...
    content_type: str = "application/json"
    log_tail: str | None = None  # base64 of the last 4 KB of this invocation's log
    duration_ms: float = 0.0
    billed_ms: int = 0
    max_memory_mb: int = 0
    init_duration_ms: float | None = None  # set on cold starts
    log_stream: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class ResponseSink(Protocol):
    """Where a streamed response goes while the function still runs."""

    def begin(self, content_type: str) -> None:
        """Called once, before any bytes, with the Content-Type the runtime gave."""

    def write(self, data: bytes) -> None: ...


class LogSink(Protocol):
    """Receives every log line an environment produces, platform lines included."""

    def emit(self, group: str, stream: str, timestamp_ms: int, message: str) -> None: ...


class Invoker(Protocol):
    async def invoke(self, spec: FunctionSpec, request: InvokeRequest) -> InvokeResult:
        """Run one invocation in a warm or new environment; never raises for function errors."""

    async def retire(self, function_name: str, version: str | None = None) -> None:
        """Stop idle environments of a function (or one version) and never reuse busy ones."""

    def has_idle(self, spec: FunctionSpec) -> bool:
        """Whether an invocation of ``spec`` would find a warm idle environment right now
        (otherwise it starts one, which the scaling rate limits)."""

    async def close(self) -> None:
        """Stop every environment; called once at shutdown."""
