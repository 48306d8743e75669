"""NamespaceSandboxBackend with real sandboxes: view, identity, limits, teardown, networking.

These need root (CI runs as root); see ``require_namespaces``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from lambdalite.sandbox import Limits, procfs
from lambdalite.sandbox.namespace import (
    NamespaceOptions,
    NamespaceSandbox,
    NamespaceSandboxBackend,
)
from lambdalite.sandbox.zygote import LAUNCHER

from .conftest import PYTHON, alive, require_namespaces, run_async, until

pytestmark = pytest.mark.usefixtures("namespaces")


@pytest.fixture
def namespaces() -> None:
    require_namespaces()


@pytest.fixture
def code(tmp_path: Path) -> Path:
    directory = tmp_path / "code"
    directory.mkdir()
    (directory / "data.txt").write_text("the function's own file")
    tmp_path.chmod(0o755)
    return directory


@asynccontextmanager
async def backend(tmp_path: Path, **options: object) -> AsyncIterator[NamespaceSandboxBackend]:
    b = NamespaceSandboxBackend(
        NamespaceOptions(state_dir=tmp_path / "state", probe=False, **options)  # type: ignore[arg-type]
    )
    b.prepare()
    try:
        yield b
    finally:
        await b.close()


def python(source: str) -> list[str]:
    return [PYTHON, "-I", "-c", textwrap.dedent(source)]


async def run(
    b: NamespaceSandboxBackend,
    argv: list[str],
    code: Path,
    limits: Limits | None = None,
    **kw: object,
) -> tuple[int, list[str], NamespaceSandbox]:
    lines: list[str] = []
    sandbox = b.spawn(argv, {"ONLY": "this"}, code, limits or Limits(128, 16), lines.append, **kw)  # type: ignore[arg-type]
    status = await asyncio.wait_for(sandbox.wait(), 30)
    await sandbox.destroy()
    return status, lines, sandbox


INSPECT = """
import errno, json, os, pwd, socket, subprocess, threading
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as exc:
        return errno.errorcode[exc.errno]
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return line.split()[1]
threads = []
t = threading.Thread(target=lambda: threads.append(1)); t.start(); t.join()
vfs = os.statvfs("/tmp")
print(json.dumps({
    "pid": os.getpid(), "ppid": os.getppid(), "uid": os.getuid(), "gid": os.getgid(),
    "user": pwd.getpwuid(os.getuid()).pw_name, "cwd": os.getcwd(),
    "root": sorted(os.listdir("/")), "etc": sorted(os.listdir("/etc")),
    "task": os.listdir("/var/task"), "procs": sorted(p for p in os.listdir("/proc") if p.isdigit()),
    "caps": [status(k) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")],
    "nnp": status("NoNewPrivs"), "seccomp": status("Seccomp"),
    "hostname": socket.gethostname(), "env": os.environ.get("ONLY"),
    "tmp_mb": vfs.f_blocks * vfs.f_frsize // 2**20,
    "write_tmp": attempt(lambda: open("/tmp/x", "w").write("x")),
    "write_task": attempt(lambda: open("/var/task/x", "w")),
    "write_root": attempt(lambda: open("/x", "w")),
    "write_etc": attempt(lambda: open("/etc/passwd", "a")),
    "shadow": attempt(lambda: open("/etc/shadow")),
    "proc1_root": attempt(lambda: os.listdir("/proc/1/root")),
    "threads": threads, "shell": subprocess.run(["/bin/sh", "-c", "echo $0"],
                                               capture_output=True, text=True).stdout.strip(),
    "cgroup": open("/proc/self/cgroup").read().strip(),
    "mounts": [line.split()[4] for line in open("/proc/self/mountinfo")],
}))
"""


@run_async
async def test_view_identity_and_privileges(tmp_path: Path, code: Path) -> None:
    async with backend(tmp_path) as b:
        status, lines, sandbox = await run(b, python(INSPECT), code, Limits(128, 16))
    assert status == 0, lines
    seen = json.loads(lines[-1])
    assert seen["pid"] == 2 and seen["ppid"] == 1  # the runtime is not the namespace's init
    assert seen["uid"] == sandbox.uid == seen["gid"] and seen["uid"] >= 2**30
    assert seen["user"] == "sbx_user1051"
    assert seen["caps"] == ["0000000000000000"] * 5
    assert seen["nnp"] == "1" and seen["seccomp"] == "2"
    assert seen["cwd"] == "/var/task" and seen["task"] == ["data.txt"]
    assert seen["env"] == "this" and seen["hostname"] == "localhost"
    assert set(seen["root"]) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "opt",
                                 "proc", "root", "sbin", "tmp", "usr", "var"}  # fmt: skip
    assert "shadow" not in seen["etc"] and "passwd" in seen["etc"]
    assert seen["tmp_mb"] == 16 and seen["write_tmp"] == "ok"
    assert seen["write_task"] == "EROFS" and seen["write_root"] == "EROFS"
    assert seen["write_etc"] in ("EACCES", "EROFS")
    assert seen["shadow"] == "ENOENT"
    assert seen["proc1_root"] in ("ENOENT", "EACCES")
    # hidepid: not even the sandbox's own init is visible.
    assert "1" not in seen["procs"] and "2" in seen["procs"]
    assert seen["threads"] == [1] and seen["shell"] == "/bin/sh"
    assert seen["cgroup"].endswith(":/")  # its own cgroup namespace
    assert str(tmp_path) not in " ".join(seen["mounts"])  # no host path is mounted by name
    assert str(code) not in " ".join(seen["mounts"])


@run_async
async def test_exit_status_output_and_translated_paths(tmp_path: Path, code: Path) -> None:
    script = code / "run.sh"
    script.write_text('#!/bin/sh\necho "I am $0 in $(pwd)"\necho oops >&2\nexit 3\n')
    script.chmod(0o755)
    async with backend(tmp_path) as b:
        status, lines, _ = await run(b, [str(script)], code)
        assert status == 3
        assert lines == ["I am /var/task/run.sh in /var/task", "oops"]
        killed, _, _ = await run(b, python("import os, signal; os.kill(os.getpid(), 9)"), code)
        assert killed == -signal.SIGKILL
        with pytest.raises(FileNotFoundError):
            b.spawn([str(code / "missing")], {}, code, Limits(128, 16), print)
        with pytest.raises(OSError):
            b.spawn([PYTHON], {}, tmp_path / "no-such-code", Limits(128, 16), print)


@run_async
async def test_runtime_dir_appears_at_var_runtime(tmp_path: Path, code: Path) -> None:
    runtime = tmp_path / "runtime"
    (runtime / "python").mkdir(parents=True)
    (runtime / "python" / "client.py").write_text("import os; print(os.path.abspath(__file__))")
    async with backend(tmp_path) as b:
        argv = [PYTHON, "-I", str(runtime / "python" / "client.py")]
        status, lines, _ = await run(b, argv, code, runtime_dir=runtime)
        assert status == 0 and lines == ["/var/runtime/python/client.py"]
        # A directory that cannot be mounted makes the sandbox fail, visibly.
        failed, lines, _ = await run(b, [PYTHON, "-c", "pass"], code, runtime_dir=tmp_path / "x")
        assert failed == 125
        assert any("setup failed" in line for line in lines)


DAEMON = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(300)
    os._exit(0)
time.sleep(0.2)
print("ready", flush=True)
time.sleep(float(sys.argv[1]))
"""


def sandbox_processes(sandbox: NamespaceSandbox) -> set[int]:
    if sandbox.cgroup is not None:
        return sandbox.cgroup.pids()
    return set(procfs.members(procfs.scan(), sandbox.pid, [])) - {sandbox.pid}


@pytest.mark.parametrize("ending", ["destroy", "runtime exits"])
def test_background_processes_never_outlive_the_sandbox(
    tmp_path: Path, code: Path, ending: str
) -> None:
    @run_async
    async def scenario() -> None:
        async with backend(tmp_path) as b:
            lines: list[str] = []
            seconds = "300" if ending == "destroy" else "0.5"
            sandbox = b.spawn([*python(DAEMON), seconds], {}, code, Limits(128, 16), lines.append)
            await until(lambda: "ready" in lines, 20)
            members = sandbox_processes(sandbox)
            assert len(members) >= 2 and all(alive(p) for p in members)
            if ending == "destroy":
                await sandbox.destroy()
            else:
                assert await asyncio.wait_for(sandbox.wait(), 20) == 0
            assert not any(alive(p) for p in members)
            assert not alive(sandbox.pid)
            await sandbox.destroy()
            if sandbox.cgroup is not None:
                assert not any(d.exists() for d in sandbox.cgroup.dirs)

    scenario()


@run_async
async def test_memory_and_tmp_limits(tmp_path: Path, code: Path) -> None:
    async with backend(tmp_path) as b:
        if b.mode != "cgroup":
            pytest.skip("no memory cgroup on this host")
        grow = python("b = bytearray(200 * 2**20)\nfor i in range(0, len(b), 4096): b[i] = 1")
        status, _, sandbox = await run(b, grow, code, Limits(64, 16))
        assert status == -signal.SIGKILL and sandbox.oom_killed()
        assert sandbox.memory_peak_mb() >= 60
        fill = python(
            """
            import errno
            try:
                with open("/tmp/big", "wb") as f:
                    for _ in range(64):
                        f.write(b"x" * 2**20)
            except OSError as exc:
                print(errno.errorcode[exc.errno])
            """
        )
        status, lines, sandbox = await run(b, fill, code, Limits(256, 16))
        assert status == 0 and lines == ["ENOSPC"] and not sandbox.oom_killed()


@run_async
async def test_files_and_processes_are_limited(tmp_path: Path, code: Path) -> None:
    source = """
    import os, resource
    print(resource.getrlimit(resource.RLIMIT_NOFILE), resource.getrlimit(resource.RLIMIT_NPROC))
    fds = []
    try:
        while True:
            fds.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as exc:
        print("files", len(fds) + 3, exc.strerror)
    """
    async with backend(tmp_path) as b:
        status, lines, _ = await run(b, python(source), code, Limits(128, 16, nofile=64, nproc=32))
    assert status == 0
    assert lines == ["(64, 64) (32, 32)", "files 64 Too many open files"]


@run_async
async def test_isolated_network_only_reaches_the_runtime_api(tmp_path: Path, code: Path) -> None:
    host_listener = socket.create_server(("127.0.0.1", 0))
    port = host_listener.getsockname()[1]
    source = f"""
    import socket
    s = socket.create_connection(("127.0.0.1", 9001), timeout=10)
    s.sendall(b"hello"); print("api says", s.recv(16).decode())
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=5)
        print("host reachable")
    except OSError as exc:
        print("host", type(exc).__name__)
    print(sorted(name for _, name in socket.if_nameindex()))
    """
    async with backend(tmp_path, network="isolated") as b:
        assert b.runtime_api_address == "127.0.0.1:9001"
        lines: list[str] = []
        sandbox = b.spawn(python(source), {}, code, Limits(128, 16), lines.append)
        listener = await asyncio.wait_for(sandbox.runtime_api_socket(), 20)
        assert listener is not None and listener.getsockname() == ("127.0.0.1", 9001)
        listener.setblocking(False)
        loop = asyncio.get_running_loop()
        conn, _ = await asyncio.wait_for(loop.sock_accept(listener), 20)
        assert sandbox.owns_connection(conn)
        assert await loop.sock_recv(conn, 5) == b"hello"
        await loop.sock_sendall(conn, b"hi")
        assert await asyncio.wait_for(sandbox.wait(), 30) == 0
        conn.close()
        listener.close()
        await sandbox.destroy()
    host_listener.close()
    assert lines == ["api says hi", "host ConnectionRefusedError", "['lo']"]


@run_async
async def test_host_network_tells_its_runtime_from_strangers(tmp_path: Path, code: Path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    port = server.getsockname()[1]
    source = f"""
    import socket, time
    s = socket.create_connection(("127.0.0.1", {port}), timeout=10)
    s.recv(1)
    """
    loop = asyncio.get_running_loop()
    async with backend(tmp_path) as b:
        sandbox = b.spawn(python(source), {}, code, Limits(128, 16), print)
        inside, _ = await asyncio.wait_for(loop.sock_accept(server), 20)
        stranger = socket.create_connection(("127.0.0.1", port))
        outside, _ = await asyncio.wait_for(loop.sock_accept(server), 20)
        assert sandbox.owns_connection(inside)
        assert not sandbox.owns_connection(outside)
        inside.sendall(b"x")
        assert await asyncio.wait_for(sandbox.wait(), 30) == 0
        for s in (inside, outside, stranger, server):
            s.close()
        await sandbox.destroy()


CRASHING_SERVER = """
import asyncio, os, sys, textwrap
from pathlib import Path
from lambdalite.sandbox import Limits
from lambdalite.sandbox.namespace import NamespaceOptions, NamespaceSandboxBackend

async def main():
    b = NamespaceSandboxBackend(NamespaceOptions(state_dir=Path(sys.argv[1]), probe=False))
    b.prepare()
    s = b.spawn([sys.executable, "-c", "import time; time.sleep(300)"], {}, Path(sys.argv[2]),
                Limits(128, 16), lambda line: None)
    await asyncio.sleep(0.5)
    print(s.pid, b._zygote.pid, flush=True)
    os._exit(9)  # a crash: nothing is cleaned up

asyncio.run(main())
"""


def test_a_crashed_server_leaves_nothing_running(tmp_path: Path, code: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CRASHING_SERVER, str(tmp_path / "state"), str(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    init, zygote = (int(x) for x in out.stdout.split())
    deadline = time.monotonic() + 10
    while (alive(init) or alive(zygote)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(init) and not alive(zygote)


@run_async
async def test_startup_sweeps_sandboxes_of_a_dead_server(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    # A launcher whose server died but which, unlike a real one, did not notice.
    dead_owner = "--owner=4194305-1"  # pids never reach this value
    launcher = [PYTHON, "-I", "-S", str(LAUNCHER), "zygote"]
    leftover = subprocess.Popen(
        [*launcher, str(theirs.fileno()), dead_owner, f"--state={state}"],
        pass_fds=(theirs.fileno(),),
    )
    theirs.close()
    other = tmp_path / "other-state"
    # Its own socket pair, held open here: a launcher exits when its peer end closes, and
    # sharing the leftover's pair would make it exit when the sweep kills the leftover.
    held, given = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stranger = subprocess.Popen(
        [*launcher, str(given.fileno()), dead_owner, f"--state={other}"],
        pass_fds=(given.fileno(),),
    )
    given.close()
    try:
        await asyncio.sleep(0.3)
        assert leftover.poll() is None
        async with backend(tmp_path):
            assert leftover.wait(timeout=10) == -signal.SIGKILL
            assert stranger.poll() is None  # another data directory's: not ours to touch
    finally:
        for proc in (leftover, stranger):
            proc.kill()
            proc.wait()
        ours.close()
        held.close()


@run_async
async def test_many_sandboxes_at_once(tmp_path: Path, code: Path) -> None:
    async with backend(tmp_path) as b:
        results = await asyncio.gather(
            *(run(b, python(f"import os; print({i}, os.getpid())"), code) for i in range(8))
        )
        assert sorted(lines[0] for _, lines, _ in results) == [f"{i} 2" for i in range(8)]
        assert len({s.uid for _, _, s in results}) == 8
        assert all(status == 0 for status, _, _ in results)
    assert os.listdir(tmp_path / "state" / "root") == []


@run_async
async def test_a_dead_launcher_is_started_again(tmp_path: Path, code: Path) -> None:
    async with backend(tmp_path) as b:
        zygote = b._zygote
        assert zygote is not None and zygote.pid is not None
        os.kill(zygote.pid, signal.SIGKILL)
        await until(lambda: not alive(zygote.pid or 0))
        status, lines, _ = await run(b, python("print('again')"), code)
        assert status == 0 and lines == ["again"]
        assert zygote.pid is not None and alive(zygote.pid)
