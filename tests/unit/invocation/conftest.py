"""Helpers for invocation tests: real runtimes, real processes, a list-backed log sink."""

from __future__ import annotations

import asyncio
import functools
import sys
import textwrap
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lambdalite.config import Settings
from lambdalite.invocation.manager import EnvironmentManager
from lambdalite.invocation.model import FunctionSpec, InvokeRequest
from lambdalite.sandbox import ProcessSandboxBackend, SandboxOptions

HERE = Path(__file__).resolve().parent
TINY_RUNTIME = [sys.executable, "-u", str(HERE / "runtime_client.py")]
VENV_PYTHON = Path("/work/main/.venv/bin/python")
RIC_PYTHON = VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable)


def tiny_command(spec: FunctionSpec) -> list[str]:
    return list(TINY_RUNTIME)


def ric_command(spec: FunctionSpec) -> list[str]:
    return [str(RIC_PYTHON), "-m", "awslambdaric", spec.handler]


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test function in a fresh event loop."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return wrapper


@dataclass
class ListSink:
    events: list[tuple[str, str, int, str]] = field(default_factory=list)

    def emit(self, group: str, stream: str, timestamp_ms: int, message: str) -> None:
        self.events.append((group, stream, timestamp_ms, message))

    def messages(self) -> list[str]:
        return [e[3] for e in self.events]


def write_code(directory: Path, source: str, name: str = "app.py") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(textwrap.dedent(source))
    return directory


def make_spec(code_dir: Path, **overrides: Any) -> FunctionSpec:
    values: dict[str, Any] = {
        "function_name": "fn",
        "version": "$LATEST",
        "function_arn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
        "runtime": "python3.11",
        "handler": "app.handler",
        "code_dir": code_dir,
        "memory_mb": 128,
        "timeout_s": 3,
        "ephemeral_mb": 512,
        "environment": {},
        "revision": "r1",
        "region": "us-east-1",
        "account_id": "000000000000",
    }
    values.update(overrides)
    return FunctionSpec(**values)


def make_request(payload: bytes = b"{}", **overrides: Any) -> InvokeRequest:
    values: dict[str, Any] = {
        "request_id": str(uuid.uuid4()),
        "payload": payload,
        "invoked_arn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
    }
    values.update(overrides)
    return InvokeRequest(**values)


class Harness:
    """A manager plus its sink and backend, closed by ``async with``."""

    def __init__(
        self,
        command: Callable[[FunctionSpec], list[str]] = tiny_command,
        enforcement: str = "auto",
        **settings: Any,
    ) -> None:
        settings.setdefault("init_timeout", 5.0)
        self.settings = Settings(**settings)
        self.sink = ListSink()
        self.backend = ProcessSandboxBackend(
            SandboxOptions(memory_enforcement=enforcement, poll_interval=0.02)
        )
        self.command = command

    async def __aenter__(self) -> Harness:
        self.manager = EnvironmentManager(self.settings, self.sink, self.backend, self.command)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.manager.close()
        await self.backend.close()

    async def invoke(self, spec: FunctionSpec, payload: bytes = b"{}", **kw: Any) -> Any:
        return await self.manager.invoke(spec, make_request(payload, **kw))


def decoded(result: Any) -> Any:
    import json

    return json.loads(result.payload)


Runner = Callable[..., Awaitable[Any]]


@pytest.fixture
def code(tmp_path: Path) -> Callable[[str], Path]:
    def make(source: str) -> Path:
        return write_code(tmp_path / uuid.uuid4().hex[:8], source)

    return make
