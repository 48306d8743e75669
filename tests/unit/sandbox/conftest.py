"""Helpers for sandbox tests."""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import textwrap
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from lambdalite.sandbox import ProcessSandboxBackend, SandboxOptions

PYTHON = sys.executable


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return wrapper


def script(source: str) -> list[str]:
    return [PYTHON, "-u", "-c", textwrap.dedent(source)]


def backend(mode: str = "auto") -> ProcessSandboxBackend:
    return ProcessSandboxBackend(SandboxOptions(memory_enforcement=mode, poll_interval=0.02))


def cgroups_available() -> bool:
    return ProcessSandboxBackend().mode == "cgroup"


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


@functools.cache
def namespace_problem() -> str | None:
    """Why namespace sandboxes cannot run here (None when they can); checked once."""
    import tempfile

    from lambdalite.sandbox.namespace import (
        NamespaceOptions,
        NamespaceSandboxBackend,
        NamespaceUnavailable,
    )

    if os.geteuid() != 0:
        return f"namespace sandboxes need root (running as uid {os.geteuid()})"
    with tempfile.TemporaryDirectory() as state:
        probe = NamespaceSandboxBackend(NamespaceOptions(state_dir=Path(state)))
        try:
            probe.prepare()
        except NamespaceUnavailable as exc:
            return str(exc)
        finally:
            asyncio.run(probe.close())
    return None


def require_namespaces() -> None:
    """Skip without root or namespace support; in CI, root without working sandboxes fails."""
    problem = namespace_problem()
    if problem is None:
        return
    if os.environ.get("CI") and os.geteuid() == 0:
        pytest.fail(f"CI runs as root, but namespace sandboxes do not work: {problem}")
    pytest.skip(problem)
