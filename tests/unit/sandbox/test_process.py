"""ProcessSandboxBackend with real processes, in every memory enforcement mode."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from lambdalite.sandbox import Limits, describe_exit
from lambdalite.sandbox.output import MAX_LINE

from .conftest import alive, backend, cgroups_available, run_async, script, until

MODES = ["cgroup", "poll"]


def need(mode: str) -> None:
    if mode == "cgroup" and not cgroups_available():
        pytest.skip("no writable memory cgroup on this host")


def test_describe_exit() -> None:
    assert describe_exit(0) == "exit status 0"
    assert describe_exit(3) == "exit status 3"
    assert describe_exit(-signal.SIGKILL) == "signal: killed"
    assert describe_exit(-signal.SIGSEGV) == "signal: segmentation fault"
    assert describe_exit(-signal.SIGTERM) == "signal: terminated"


@run_async
async def test_output_lines_exit_status_and_limits(tmp_path: Path) -> None:
    lines: list[str] = []
    b = backend()
    sandbox = b.spawn(
        script(
            """
            import os, resource, sys
            print("one")
            sys.stderr.write("two\\n")
            print("three\\rstill three")
            print("x" * 300000)
            print(json_limits := resource.getrlimit(resource.RLIMIT_NOFILE)[0])
            print(resource.getrlimit(resource.RLIMIT_FSIZE)[0])
            print(os.getcwd(), os.environ.get("ONLY"), os.getsid(0) == os.getpid())
            sys.stdout.write("unterminated")
            sys.exit(7)
            """
        ),
        {"ONLY": "this"},
        tmp_path,
        Limits(memory_mb=256, ephemeral_mb=10),
        lines.append,
    )
    assert await asyncio.wait_for(sandbox.wait(), 10) == 7
    assert sandbox.exit_status() == 7
    await sandbox.destroy()
    assert lines[:3] == ["one", "two", "three\rstill three"]
    assert lines[3] == "x" * MAX_LINE and lines[4] == "x" * (300000 - MAX_LINE)
    assert lines[5:] == ["1024", str(10 * 1024 * 1024), f"{tmp_path} this True", "unterminated"]
    assert sandbox.memory_peak_mb() >= 0
    await b.close()


@run_async
async def test_drain_delivers_what_was_written_so_far(tmp_path: Path) -> None:
    lines: list[str] = []
    b = backend()
    sandbox = b.spawn(
        script(
            """
            import sys, time
            for i in range(1000):
                print("row", i)
            sys.stdout.write("partial")
            sys.stdout.flush()
            open("ready", "w").close()
            time.sleep(30)
            """
        ),
        {},
        tmp_path,
        Limits(128, 512),
        lines.append,
    )
    await until(lambda: (tmp_path / "ready").exists())
    # Everything written before the file appeared is delivered now, without waiting.
    sandbox.drain(flush_partial=True)
    assert lines == [f"row {i}" for i in range(1000)] + ["partial"]
    sandbox.kill()
    assert await asyncio.wait_for(sandbox.wait(), 5) == -signal.SIGKILL
    await b.close()


@pytest.mark.parametrize("mode", MODES)
def test_destroy_kills_every_descendant(tmp_path: Path, mode: str) -> None:
    need(mode)

    @run_async
    async def scenario() -> None:
        lines: list[str] = []
        b = backend(mode)
        # A child in the same session, and (cgroup mode) a daemon in a session of its own.
        sandbox = b.spawn(
            [
                *script(
                    """
                import json, os, subprocess, sys, time
                child = subprocess.Popen(["sleep", "300"]).pid
                daemon = None
                if sys.argv[1] == "cgroup":
                    r, w = os.pipe()
                    if os.fork() == 0:
                        os.setsid()
                        if os.fork() == 0:
                            os.write(w, str(os.getpid()).encode())
                            time.sleep(300)
                        os._exit(0)
                    os.close(w)
                    daemon = int(os.read(r, 32))
                print(json.dumps([child, daemon]))
                time.sleep(300)
                """
                ),
                mode,
            ],
            {},
            tmp_path,
            Limits(128, 512),
            lines.append,
        )
        await until(lambda: bool(lines))
        pids = [p for p in json.loads(lines[0]) if p] + [sandbox.pid]
        assert all(alive(p) for p in pids)
        cgroup_dirs = sandbox.cgroup.dirs if sandbox.cgroup else []
        assert all(d.exists() for d in cgroup_dirs)
        await asyncio.gather(sandbox.destroy(), sandbox.destroy())
        await sandbox.destroy()  # idempotent
        await until(lambda: not any(alive(p) for p in pids))
        assert not any(d.exists() for d in cgroup_dirs)
        await b.close()

    scenario()


HOG = """
import time
hog = b"\\x01" * (300 * 1024 * 1024)
time.sleep(30)
"""


@pytest.mark.parametrize("mode", MODES)
def test_memory_limit_kills_and_reports_oom(tmp_path: Path, mode: str) -> None:
    need(mode)

    @run_async
    async def scenario() -> None:
        b = backend(mode)
        sandbox = b.spawn(script(HOG), {}, tmp_path, Limits(128, 512), lambda line: None)
        assert sandbox.memory_enforced
        status = await asyncio.wait_for(sandbox.wait(), 20)
        assert describe_exit(status) == "signal: killed"
        assert sandbox.oom_killed()
        assert sandbox.memory_peak_mb() >= 100
        await sandbox.destroy()
        await b.close()

    scenario()


@pytest.mark.parametrize("mode", MODES)
def test_under_the_limit_nothing_happens(tmp_path: Path, mode: str) -> None:
    need(mode)

    @run_async
    async def scenario() -> None:
        b = backend(mode)
        source = "hog = b'\\x01' * (40 * 1024 * 1024)\nimport time\ntime.sleep(0.3)\n"
        sandbox = b.spawn(script(source), {}, tmp_path, Limits(128, 512), lambda line: None)
        assert await asyncio.wait_for(sandbox.wait(), 20) == 0
        assert not sandbox.oom_killed()
        assert 40 <= sandbox.memory_peak_mb() <= 128
        await sandbox.destroy()
        await b.close()

    scenario()


@run_async
async def test_off_mode_does_not_kill(tmp_path: Path) -> None:
    b = backend("off")
    assert b.mode == "off"
    source = "hog = b'\\x01' * (160 * 1024 * 1024)\nimport time\ntime.sleep(0.3)\n"
    sandbox = b.spawn(script(source), {}, tmp_path, Limits(128, 512), lambda line: None)
    assert not sandbox.memory_enforced
    assert await asyncio.wait_for(sandbox.wait(), 20) == 0
    assert not sandbox.oom_killed()
    await b.close()


@run_async
async def test_missing_executable_raises_oserror(tmp_path: Path) -> None:
    b = backend()
    with pytest.raises(OSError):
        b.spawn(["/no/such/binary"], {}, tmp_path, Limits(128, 512), lambda line: None)
    await b.close()


@run_async
async def test_backend_close_destroys_everything(tmp_path: Path) -> None:
    b = backend()
    sandboxes = [
        b.spawn(script("import time; time.sleep(300)"), {}, tmp_path, Limits(128, 512), print)
        for _ in range(3)
    ]
    await b.close()
    await until(lambda: not any(alive(s.pid) for s in sandboxes))
    assert all(s.exit_status() == -signal.SIGKILL for s in sandboxes)
