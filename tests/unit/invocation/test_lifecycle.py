"""Environment lifecycle: keep-alive expiry, retirement, shutdown, and stray processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lambdalite.sandbox import ProcessSandboxBackend

from .conftest import Harness, decoded, make_spec, run_async

APP = """
import os, subprocess, time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    result = {"pid": os.getpid()}
    if event.get("spawn"):
        result["child"] = subprocess.Popen(["sleep", "300"]).pid
    if event.get("daemon"):
        r, w = os.pipe()
        if os.fork() == 0:  # a daemon: double fork into a session of its own
            os.setsid()
            if os.fork() == 0:
                os.write(w, str(os.getpid()).encode())
                time.sleep(300)
                os._exit(0)
            os._exit(0)
        os.close(w)
        result["daemon"] = int(os.read(r, 32))
    return result
"""


def alive(pid: int) -> bool:
    """Whether a process exists and has not exited (zombies count as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


async def gone(*pids: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        await asyncio.sleep(0.02)
    return False


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def test_idle_environments_expire_after_keep_alive(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness(keep_alive=0.2) as h:
            spec = make_spec(code(APP))
            pid = decoded(await h.invoke(spec))["pid"]
            await until(lambda: not h.manager.environments())
            assert await gone(pid)
            again = await h.invoke(spec)
            assert again.init_duration_ms is not None and decoded(again)["pid"] != pid

    scenario()


def test_retire_stops_idle_and_marks_busy(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness() as h:
            spec = make_spec(code(APP))
            other = make_spec(code(APP), version="7")
            await asyncio.gather(h.invoke(spec), h.invoke(spec))  # two warm environments
            other_pid = decoded(await h.invoke(other))["pid"]
            in_flight = asyncio.ensure_future(h.invoke(spec, b'{"sleep": 0.5}'))
            await until(lambda: any(e.state == "busy" for e in h.manager.environments()))
            envs = h.manager.environments()
            busy_pid = next(e.pid for e in envs if e.state == "busy")
            idle_pid = next(e.pid for e in envs if e.state == "idle" and e.version == "$LATEST")
            await h.manager.retire("fn", "$LATEST")
            assert await gone(idle_pid)
            result = await in_flight
            assert result.function_error is None  # the running invocation finishes normally
            assert decoded(result)["pid"] == busy_pid
            assert await gone(busy_pid)  # ...and its environment is not reused
            assert alive(other_pid)  # another version is untouched
            fresh = await h.invoke(spec)
            assert fresh.init_duration_ms is not None
            assert decoded(fresh)["pid"] not in (idle_pid, busy_pid)
            assert decoded(await h.invoke(other))["pid"] == other_pid

    scenario()


@pytest.mark.parametrize("mode", ["cgroup", "poll"])
def test_destroy_kills_background_processes(code: Callable[[str], Path], mode: str) -> None:
    if mode == "cgroup" and ProcessSandboxBackend().mode != "cgroup":
        pytest.skip("no writable memory cgroup on this host")

    @run_async
    async def scenario() -> None:
        async with Harness(enforcement=mode) as h:
            spec = make_spec(code(APP))
            # Without cgroups a daemon that left the session is only found if a /proc scan saw
            # it before teardown, which a test cannot rely on.
            daemon = b"true" if mode == "cgroup" else b"false"
            body = decoded(await h.invoke(spec, b'{"spawn": true, "daemon": ' + daemon + b"}"))
            strays = [body["child"]] + ([body["daemon"]] if mode == "cgroup" else [])
            assert all(alive(p) for p in strays)  # they outlive the invocation...
            await h.manager.retire("fn")
            assert await gone(body["pid"], *strays)  # ...but not the environment

    scenario()


def test_close_leaves_no_processes(code: Callable[[str], Path]) -> None:
    pids: list[int] = []

    @run_async
    async def scenario() -> None:
        async with Harness() as h:
            spec = make_spec(code(APP), timeout_s=30)
            daemon = b"true" if h.backend.mode == "cgroup" else b"false"
            first = h.invoke(spec, b'{"spawn": true, "daemon": ' + daemon + b"}")
            pair = await asyncio.gather(first, h.invoke(spec))
            for result in pair:
                pids.extend(v for v in decoded(result).values())
            hanging = asyncio.ensure_future(h.invoke(spec, b'{"sleep": 60}'))
            await until(lambda: any(e.state == "busy" for e in h.manager.environments()))
            pids.extend(e.pid for e in h.manager.environments() if e.pid)
            await h.manager.close()
            result = await asyncio.wait_for(hanging, 5)
            assert result.error_type == "Runtime.ExitError"
            assert h.manager.environments() == []

    scenario()
    assert len(pids) >= 4
    assert [p for p in pids if alive(p)] == []
