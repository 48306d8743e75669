"""Cold starts forked from zygotes, through a real server: where environments come from, what
they see, and the exec path that remains (``zygotes=False``, exec wrappers, crashed zygotes).

Proof of origin is structural, never timing: a forked runtime holds the zygote's frozen
objects (``gc.get_freeze_count() > 0``; a new interpreter has none), and on the host its
ancestry leads to the zygote of its interpreter (``launcher.py --preload=...``). Cold starts
that come while their zygote is still starting may be exec'd (see ``forked``); the zygotes of
the server's own Python runtime and of stored functions' runtimes start at boot.
"""

from __future__ import annotations

import io
import json
import os
import signal
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdalite.invocation.prestart import OWN_RUNTIME
from lambdalite.runtimes.registry import RuntimeRegistry
from tests.e2e.asynchelp import wait_for
from tests.e2e.harness import ServerProcess, create, zip_files
from tests.unit.sandbox.conftest import require_namespaces

AVAILABLE = {r: p for r, p in RuntimeRegistry().available().items() if r.startswith("python")}

INSPECT = """
import gc, os, random, sys, time

def link(fd):
    try:
        return os.readlink("/proc/self/fd/" + fd)
    except OSError:
        return "gone"  # the descriptor that listed the directory

def handler(event, context):
    with open("/proc/self/cmdline", "rb") as fh:
        cmdline = [part.decode() for part in fh.read().split(b"\\0") if part]
    return {
        "version": "python%d.%d" % sys.version_info[:2],
        "frozen": gc.get_freeze_count(),
        "pid": os.getpid(), "ppid": os.getppid(), "uid": os.getuid(),
        "fds": {fd: link(fd) for fd in os.listdir("/proc/self/fd")},
        "cmdline": cmdline, "argv": sys.argv,
        "main": getattr(sys.modules["__main__"], "__file__", None),
        "mark": os.environ.get("MARK"), "getenv": os.getenv("MARK"),
        "tz": time.tzname[0], "cwd": os.getcwd(),
        "path": sys.path[:2], "random": random.random(),
        "stdout_buffered": not sys.stdout.write_through,
        "private": sorted(m for m in sys.modules if m.startswith("_lambdalite")),
    }
"""
APP = zip_files({"app.py": INSPECT})


def deploy(server: ServerProcess, runtime: str = "python3.11", **extra: Any) -> str:
    name = f"z-{uuid.uuid4().hex[:10]}"
    env = {"Variables": {"MARK": "seen"}}
    create(server.client(), name, Runtime=runtime, Code={"ZipFile": APP}, Environment=env, **extra)
    return name


def inspect(server: ServerProcess, name: str) -> dict[str, Any]:
    response = server.client().invoke(FunctionName=name, Payload=b"{}")
    body = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, body
    assert isinstance(body, dict)
    return body


def forked(server: ServerProcess, runtime: str = "python3.11") -> dict[str, Any]:
    """A cold start forked from the zygote of ``runtime``'s interpreter. A cold start that
    comes while the zygote starts may be exec'd; new functions are tried until one comes from
    the zygote."""
    deadline = time.monotonic() + 60
    while True:
        seen = inspect(server, deploy(server, runtime))
        if seen["frozen"] > 0 or time.monotonic() > deadline:
            return seen
        time.sleep(0.1)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def zygotes(server: ServerProcess) -> dict[str, int]:
    """This server's running zygotes (fork servers that preload a runtime): exe -> pid."""
    owner = f"--owner={server.proc.pid if server.proc else 0}-"
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        args = _cmdline(int(entry.name))
        try:
            # Children forked from a zygote carry its command line (and its name, until
            # they take their own): the zygote is the one the server started.
            if (entry / "comm").read_text().strip() != "sandbox-zygote":
                continue
            if server.proc is None or _ppid(int(entry.name)) != server.proc.pid:
                continue
        except (OSError, ValueError, IndexError):
            continue
        if any(a.startswith("--preload=") for a in args) and any(a.startswith(owner) for a in args):
            found[os.path.realpath(f"/proc/{entry.name}/exe")] = int(entry.name)
    return found


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(_ppid(int(entry.name)), []).append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@pytest.fixture(scope="module")
def namespaced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    require_namespaces()
    server = ServerProcess(tmp_path_factory.mktemp("zyg"), sandbox="namespace").start()
    yield server
    server.stop()


@pytest.mark.parametrize("runtime", sorted(AVAILABLE))
def test_cold_starts_fork_from_the_zygote_of_their_interpreter(
    namespaced: ServerProcess, runtime: str
) -> None:
    seen = forked(namespaced, runtime)
    assert seen["version"] == runtime
    assert seen["frozen"] > 0  # the zygote's objects: this process was forked, not exec'd
    again = inspect(namespaced, deploy(namespaced, runtime))  # and so are later cold starts
    assert again["frozen"] > 0 and again["version"] == runtime
    # On the host: zygote of this interpreter -> sandbox init -> the runtime, same binary.
    interpreter = os.path.realpath(AVAILABLE[runtime])
    zygote = zygotes(namespaced)[interpreter]
    runtimes = [
        pid
        for pid in descendants(zygote)
        if _ppid(pid) != zygote and os.path.realpath(f"/proc/{pid}/exe") == interpreter
    ]
    assert runtimes, "no runtime process below the zygote"


def test_a_forked_environment_looks_like_a_new_interpreter(namespaced: ServerProcess) -> None:
    seen = forked(namespaced)
    assert seen["frozen"] > 0
    assert seen["pid"] == 2 and seen["ppid"] == 1 and seen["uid"] >= 2**30
    # Beyond 0-2: the Runtime API connection and the directory being listed, nothing else.
    extra = sorted(link.split(":")[0] for fd, link in seen["fds"].items() if int(fd) > 2)
    assert extra == ["gone", "socket"], seen["fds"]
    assert seen["cmdline"][1:] == ["/var/runtime/python/launcher.py"]
    assert not any("--state" in part or "--preload" in part for part in seen["cmdline"])
    assert seen["argv"] == ["/var/runtime/python/launcher.py"]
    assert seen["main"] == "/var/runtime/python/bootstrap.py"
    assert seen["mark"] == seen["getenv"] == "seen"
    assert seen["tz"] == "UTC" and seen["cwd"] == "/var/task"
    assert seen["path"][0] == "/var/task"
    assert seen["stdout_buffered"] and seen["private"] == []


def test_environments_do_not_share_random_state(namespaced: ServerProcess) -> None:
    forked(namespaced)
    name = deploy(namespaced)
    lam = namespaced.client()
    first = inspect(namespaced, name)
    lam.update_function_configuration(FunctionName=name, MemorySize=256)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    second = inspect(namespaced, name)
    assert first["frozen"] > 0 and second["frozen"] > 0
    assert first["random"] != second["random"]


def test_an_exec_wrapper_still_execs(namespaced: ServerProcess) -> None:
    wrapper = '#!/bin/sh\nexec "$@"\n'
    files = {"app.py": INSPECT, "wrap.sh": wrapper}
    name = f"z-{uuid.uuid4().hex[:10]}"
    env = {"Variables": {"MARK": "seen", "AWS_LAMBDA_EXEC_WRAPPER": "/var/task/wrap.sh"}}
    lam = namespaced.client()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for file_name, content in files.items():
            info = zipfile.ZipInfo(file_name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if file_name.endswith(".sh") else 0o644) << 16
            zf.writestr(info, content)
    create(lam, name, Code={"ZipFile": buf.getvalue()}, Environment=env)
    seen = inspect(namespaced, name)
    assert seen["frozen"] == 0 and seen["mark"] == "seen"


def test_a_crashed_zygote_is_started_again(namespaced: ServerProcess) -> None:
    assert forked(namespaced)["frozen"] > 0
    interpreter = os.path.realpath(AVAILABLE["python3.11"])
    old = zygotes(namespaced)[interpreter]
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{old}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    # Cold starts keep working (exec'd, or from sandboxes forked before the crash) while a
    # new zygote starts; then they come from it.
    for _ in range(3):
        assert inspect(namespaced, deploy(namespaced))["mark"] == "seen"
    assert forked(namespaced)["frozen"] > 0
    assert zygotes(namespaced)[interpreter] != old


def test_zygotes_off_execs_every_runtime(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", zygotes="false").start()
    try:
        seen = inspect(server, deploy(server))
        assert seen["frozen"] == 0 and seen["mark"] == "seen"
        assert zygotes(server) == {}
    finally:
        server.stop()


def test_process_backend_forks_from_its_zygote(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", sandbox="process").start()
    try:
        seen = forked(server)
        name = deploy(server)
        seen = inspect(server, name)
        assert seen["frozen"] > 0 and seen["mark"] == "seen"
        interpreter = os.path.realpath(AVAILABLE["python3.11"])
        assert seen["ppid"] == zygotes(server)[interpreter]
        assert seen["cwd"] == seen["path"][0] and len(seen["fds"]) == 5
        again = inspect(server, name)  # warm: the same process
        assert again["pid"] == seen["pid"]
    finally:
        server.stop()


def serving(pid: int) -> bool:
    """Whether a zygote is done starting: blocked on its socket, waiting for requests (it only
    reads from it once preloaded and ready)."""
    try:
        return Path(f"/proc/{pid}/wchan").read_text() == "__skb_wait_for_more_packets"
    except OSError:
        return False


def test_zygotes_start_at_boot_and_the_first_cold_start_forks(tmp_path: Path) -> None:
    """Before any invocation, a booting server starts the zygote of its own Python runtime and
    of every runtime its stored functions use; the first cold start after boot is forked."""
    require_namespaces()
    if OWN_RUNTIME not in AVAILABLE:
        pytest.skip(f"no interpreter for {OWN_RUNTIME}")
    other = next((r for r in sorted(AVAILABLE) if r != OWN_RUNTIME), OWN_RUNTIME)
    data = tmp_path / "data"
    own = os.path.realpath(AVAILABLE[OWN_RUNTIME])
    first = ServerProcess(data, sandbox="namespace").start()
    try:
        wait_for(lambda: own in zygotes(first))  # no function exists yet
        name = deploy(first, other)
    finally:
        first.stop()
    second = ServerProcess(data, sandbox="namespace").start()
    try:
        wanted = {own, os.path.realpath(AVAILABLE[other])}
        started = wait_for(lambda: wanted <= set(zygotes(second)) and zygotes(second))
        wait_for(lambda: all(serving(pid) for pid in started.values()))
        seen = inspect(second, name)  # the first invocation since boot: a cold start
        assert seen["version"] == other and seen["mark"] == "seen"
        assert seen["frozen"] > 0  # forked from the zygote started at boot
    finally:
        second.stop()
