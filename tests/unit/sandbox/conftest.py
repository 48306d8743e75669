"""Helpers for sandbox tests."""

from __future__ import annotations

import asyncio
import functools
import sys
import textwrap
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

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
