"""Zygotes with real processes: which spawns are forked, forked sandboxes in both backends,
children forked ahead of need, and zygotes that die.

A forked runtime is recognised by ``gc.get_freeze_count() > 0`` (the zygote froze what it
had loaded; a new interpreter has frozen nothing). The function's module does the test's
work while the runtime client imports it, before any Runtime API request.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from lambdalite.runtimes.python import launcher_path
from lambdalite.runtimes.registry import RuntimeRegistry
from lambdalite.sandbox import Limits
from lambdalite.sandbox.forked import ForkedProcessSandbox
from lambdalite.sandbox.namespace import NamespaceOptions, NamespaceSandboxBackend
from lambdalite.sandbox.process import ProcessSandboxBackend, SandboxOptions
from lambdalite.sandbox.zygotes import ForkableRuntime, ZygotePool

from .conftest import alive, require_namespaces, run_async, until

RUNTIME = ForkableRuntime(launcher_path(), launcher_path().with_name("zygote.py"))
PYTHONS = {r: p for r, p in RuntimeRegistry().available().items() if r.startswith("python")}
PYTHON = PYTHONS.get("python3.11") or next(iter(PYTHONS.values()))
REPORT = (
    "import gc, os, sys\n"
    "print('%d.%d' % sys.version_info[:2], gc.get_freeze_count() > 0, os.getppid(),"
    " os.environ.get('ONLY'), sys.path[0], flush=True)\n"
)


def code_dir(tmp_path: Path, source: str) -> Path:
    directory = tmp_path / "code"
    directory.mkdir(exist_ok=True)
    (directory / "app.py").write_text(source)
    tmp_path.chmod(0o755)
    return directory


def env(task_root: str, **extra: str) -> dict[str, str]:
    return {
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9",
        "_HANDLER": "app.handler",
        "LAMBDA_TASK_ROOT": task_root,
        "ONLY": "this",
        **extra,
    }


@asynccontextmanager
async def process_backend() -> AsyncIterator[ProcessSandboxBackend]:
    b = ProcessSandboxBackend(SandboxOptions(poll_interval=0.02))
    b.use_zygotes(RUNTIME)
    try:
        yield b
    finally:
        await b.close()


@asynccontextmanager
async def namespace_backend(tmp_path: Path) -> AsyncIterator[NamespaceSandboxBackend]:
    b = NamespaceSandboxBackend(NamespaceOptions(state_dir=tmp_path / "state", probe=False))
    b.prepare()
    b.use_zygotes(RUNTIME)
    try:
        yield b
    finally:
        await b.close()


async def run(
    b: ProcessSandboxBackend, python: str, code: Path, task_root: str, **extra: str
) -> tuple[int, list[str]]:
    lines: list[str] = []
    runtime_dir = launcher_path().parent.parent
    sandbox = b.spawn(
        [python, str(launcher_path())],
        env(task_root, **extra),
        code,
        Limits(128, 16),
        lines.append,
        runtime_dir=runtime_dir,
    )
    status = await asyncio.wait_for(sandbox.wait(), 30)
    await sandbox.destroy()
    return status, lines


async def warm(b: ProcessSandboxBackend, python: str, visible_dir: str) -> None:
    """Start the zygote of ``python`` and wait until it is ready (until then, spawns exec)."""
    pool = b.zygotes
    assert pool is not None
    pool.prestart(python, visible_dir)
    await until(lambda: pool.server(python, visible_dir).ready(), within=60)


HOST_DIR = str(launcher_path().parent)  # where process sandboxes see the runtime client
SANDBOX_DIR = "/var/runtime/python"  # and namespace sandboxes


def test_only_plain_runtime_commands_are_forked(tmp_path: Path) -> None:
    pool = ZygotePool(RUNTIME)
    script = str(launcher_path())
    code = tmp_path / "code"
    (code / "lib").mkdir(parents=True)
    libs = {"/var/task": code, "/opt": None}
    plain = {"LD_LIBRARY_PATH": "/lib64:/var/task:/var/task/lib:/opt/lib", "PYTHONPATH": "/x"}
    assert pool.interpreter_for([PYTHON, script], plain, libs) == PYTHON
    assert pool.interpreter_for(["/var/task/wrap.sh", PYTHON, script], plain, libs) is None
    assert pool.interpreter_for([PYTHON, script, "app.handler"], plain, libs) is None
    assert pool.interpreter_for([PYTHON, "/elsewhere/launcher.py"], plain, libs) is None
    for name in ("PYTHONHASHSEED", "PYTHONOPTIMIZE", "LD_PRELOAD", "_LAMBDALITE_X"):
        assert pool.interpreter_for([PYTHON, script], {**plain, name: "1"}, libs) is None
    # Extension modules are imported by path; a library the loader may be asked for is not.
    (code / "_speedups.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    assert pool.interpreter_for([PYTHON, script], plain, libs) == PYTHON
    (code / "lib" / "libpq.so.5").write_bytes(b"")
    assert pool.interpreter_for([PYTHON, script], plain, libs) is None


@pytest.mark.parametrize("runtime", sorted(PYTHONS))
@run_async
async def test_process_sandboxes_fork_from_each_interpreter(tmp_path: Path, runtime: str) -> None:
    code = code_dir(tmp_path, REPORT + "os._exit(7)\n")
    async with process_backend() as b:
        await warm(b, PYTHONS[runtime], HOST_DIR)
        status, lines = await run(b, PYTHONS[runtime], code, str(code))
        assert b.zygotes is not None
        zygote = b.zygotes.pids()[PYTHONS[runtime]]
    assert status == 7, lines
    version, forked, ppid, only, path0 = lines[0].split()
    assert f"python{version}" == runtime and forked == "True"
    assert int(ppid) == zygote and only == "this" and path0 == str(code)


@run_async
async def test_forked_process_sandboxes_are_tracked_and_killed(tmp_path: Path) -> None:
    code = code_dir(
        tmp_path,
        "import os, subprocess, time\n"
        "subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        "print(os.getpid(), flush=True)\ntime.sleep(300)\n",
    )
    lines: list[str] = []
    async with process_backend() as b:
        await warm(b, PYTHON, HOST_DIR)
        sandbox = b.spawn(
            [PYTHON, str(launcher_path())], env(str(code)), code, Limits(128, 16), lines.append
        )
        assert isinstance(sandbox, ForkedProcessSandbox)
        await until(lambda: bool(lines))
        assert int(lines[0]) == sandbox.pid and os.getppid() != sandbox.pid
        await asyncio.sleep(0.2)
        members = sandbox._alive_members()
        assert sandbox.pid in members and len(members) >= 2  # the daemon is found too
        await sandbox.destroy()
        assert sandbox.exit_status() == -signal.SIGKILL
        assert not any(alive(pid) for pid in members)


@run_async
async def test_a_dead_zygote_is_replaced_and_its_children_still_end(tmp_path: Path) -> None:
    code = code_dir(tmp_path, "import time\nprint('up', flush=True)\ntime.sleep(300)\n")
    lines: list[str] = []
    async with process_backend() as b:
        await warm(b, PYTHON, HOST_DIR)
        argv = [PYTHON, str(launcher_path())]
        sandbox = b.spawn(argv, env(str(code)), code, Limits(128, 16), lines.append)
        assert isinstance(sandbox, ForkedProcessSandbox)
        await until(lambda: bool(lines))
        assert b.zygotes is not None
        old = b.zygotes.pids()[PYTHON]
        os.kill(old, signal.SIGKILL)
        await until(lambda: not alive(old))
        sandbox.kill()
        assert await asyncio.wait_for(sandbox.wait(), 10) == -signal.SIGKILL
        await sandbox.destroy()
        report = code_dir(tmp_path, REPORT + "os._exit(0)\n")
        status, out = await run(b, PYTHON, report, "")  # exec'd: a new zygote is starting
        assert status == 0 and out[0].split()[1] == "False"
        await until(lambda: b.zygotes is not None and b.zygotes.server(PYTHON, HOST_DIR).ready())
        status, out = await run(b, PYTHON, report, "")
        assert status == 0 and out[0].split()[1] == "True"
        assert b.zygotes.pids()[PYTHON] != old


@pytest.fixture
def namespaces() -> None:
    require_namespaces()


@pytest.mark.usefixtures("namespaces")
@run_async
async def test_namespace_sandboxes_fork_and_use_children_forked_ahead(tmp_path: Path) -> None:
    code = code_dir(tmp_path, REPORT + "os._exit(3)\n")
    async with namespace_backend(tmp_path) as b:
        assert b.zygotes is not None
        await warm(b, PYTHON, SANDBOX_DIR)
        first = await run(b, PYTHON, code, "/var/task")
        pool = b.zygotes
        await until(lambda: pool.queues.waiting() == pool.ahead)
        second = await run(b, PYTHON, code, "/var/task")
        assert b.zygotes.ahead_used == 1 and b.zygotes.forks == 2
    for status, lines in (first, second):
        assert status == 3, lines
        _version, forked, ppid, only, path0 = lines[0].split()
        assert forked == "True" and ppid == "1" and only == "this" and path0 == "/var/task"
    # Closing the backend gave up the waiting children and removed their cgroups.
    assert os.listdir(tmp_path / "state" / "root") == []


@pytest.mark.usefixtures("namespaces")
@run_async
async def test_namespace_setup_failures_fall_back_to_exec(tmp_path: Path) -> None:
    code = code_dir(tmp_path, REPORT + "os._exit(0)\n")
    async with namespace_backend(tmp_path) as b:
        assert b.zygotes is not None
        # A zygote that cannot start (its preload is missing): runtimes are exec'd instead.
        pool = b.zygotes
        pool.runtime = ForkableRuntime(RUNTIME.script, tmp_path / "missing.py")
        pool.prestart(PYTHON, SANDBOX_DIR)
        await until(lambda: not pool.server(PYTHON, SANDBOX_DIR).running)
        for _ in range(3):
            status, lines = await run(b, PYTHON, code, "/var/task")
            assert status == 0 and lines[0].split()[1] == "False"
        assert pool.forks == 0


@run_async
async def test_a_forked_runtime_starts_and_ends_like_an_interpreter(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "helper.py").write_text("VALUE = 'from PYTHONPATH'\n")
    code = code_dir(
        tmp_path,
        "import atexit, gc, os, sys, time, threading, helper\n"
        "atexit.register(lambda: print('atexit ran', flush=True))\n"
        "threading.Thread(target=lambda: (time.sleep(0.2), print('thread done'))).start()\n"
        "print(gc.get_freeze_count() > 0, helper.VALUE, sys.stdout.write_through,\n"
        "      time.tzname[0], sys.argv, sys.modules['__main__'].__name__, flush=True)\n"
        "sys.stdout.write('unflushed')  # no newline: shows up at once when unbuffered\n"
        "sys.exit(5)\n",
    )
    async with process_backend() as b:
        await warm(b, PYTHON, HOST_DIR)
        status, lines = await run(
            b, PYTHON, code, str(code), PYTHONPATH=str(extra), PYTHONUNBUFFERED="1", TZ=":UTC"
        )
    assert status == 5, lines
    script = str(launcher_path())
    assert lines[0] == f"True from PYTHONPATH True UTC ['{script}'] __main__"
    # Unbuffered output, then interpreter finalization: non-daemon threads joined, atexit run.
    assert lines[1:] == ["unflushedthread done", "atexit ran"]
