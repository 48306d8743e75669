"""Hostile functions against a real server: every attack fails, the server and its other
functions do not notice.

Each test deploys a function that tries one thing a function must not be able to do, checks
that it failed with a sensible error, and meanwhile keeps a healthy function busy on the same
server, whose answers must stay correct. Needs namespace sandboxes (root); see
``require_namespaces`` for when these are skipped.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lambdalite.sandbox import cgroups
from tests.e2e.harness import ServerProcess, zip_files
from tests.e2e.test_invoke import call
from tests.unit.sandbox.conftest import require_namespaces

ATTACKS = r"""
import ctypes, errno, json, os, signal, socket, sys, time

libc = ctypes.CDLL(None, use_errno=True)


def code(exc):
    return errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno else type(exc).__name__


def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as exc:
        return code(exc)


def read(path):
    with open(path, "rb") as f:
        return f.read(64)


def write(path):
    with open(path, "w") as f:
        f.write("pwned")


def syscall_result(result):
    return "ok" if result == 0 else errno.errorcode.get(ctypes.get_errno(), "?")


def handler(event, context):
    action = event["action"]
    if action == "read":
        return {path: attempt(lambda p=path: read(p)) for path in event["paths"]}
    if action == "listdir":
        return {path: attempt(lambda p=path: os.listdir(p)) for path in event["paths"]}
    if action == "write":
        return {path: attempt(lambda p=path: write(p)) for path in event["paths"]}
    if action == "fill_tmp":
        written = 0
        try:
            with open("/tmp/fill", "wb") as f:
                chunk = b"x" * 2**20
                while written < 4096:
                    f.write(chunk)
                    f.flush()
                    written += 1
        except OSError as exc:
            return {"error": code(exc), "mb": written}
        return {"error": None, "mb": written}
    if action == "fork_bomb":
        children = []
        error = None
        try:
            while len(children) < 5000:
                pid = os.fork()
                if pid == 0:
                    time.sleep(600)
                    os._exit(0)
                children.append(pid)
        except OSError as exc:
            error = code(exc)
        for pid in children:  # tidy up, so the rest of the module runs at full speed
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        return {"error": error, "children": len(children)}
    if action == "allocate":
        blob = bytearray(event["mb"] * 2**20)
        for i in range(0, len(blob), 4096):
            blob[i] = 1
        return {"allocated": len(blob)}
    if action == "open_files":
        already = len(os.listdir("/proc/self/fd")) - 1  # less the one listdir itself used
        fds = []
        try:
            while len(fds) < 5000:
                fds.append(os.open("/dev/null", os.O_RDONLY))
        except OSError as exc:
            return {"error": code(exc), "open": already + len(fds)}
        return {"error": None, "open": already + len(fds)}
    if action == "signal_and_trace":
        result = {}
        for pid in event["pids"]:
            result[f"kill {pid}"] = attempt(lambda p=pid: os.kill(p, signal.SIGKILL))
            result[f"ptrace {pid}"] = syscall_result(libc.ptrace(16, pid, None, None))
        return result
    if action == "kill_everything":
        return attempt(lambda: os.kill(-1, signal.SIGKILL))
    if action == "processes":
        return {"pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
                "me": os.getpid(), "proc1": attempt(lambda: read("/proc/1/cmdline"))}
    if action == "mount":
        libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
        return {
            "mount": syscall_result(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)),
            "bind": syscall_result(libc.mount(b"/", b"/tmp", None, 4096, None)),
            "unshare userns": syscall_result(libc.unshare(0x10000000 | 0x00020000)),
            "chroot": syscall_result(libc.chroot(b"/tmp")),
        }
    if action == "proc_escape":
        fds = {}
        for fd in os.listdir("/proc/self/fd"):
            with __import__("contextlib").suppress(OSError):
                fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        return {
            "proc1_root": attempt(lambda: os.listdir("/proc/1/root")),
            "self_root": sorted(os.listdir("/proc/self/root")),
            "real_root": sorted(os.listdir("/")),
            "cwd_up": os.path.realpath("/proc/self/cwd/../../../.."),
            "fds": fds,
            "data_via_root": attempt(lambda: os.listdir("/proc/self/root" + event["data_dir"])),
        }
    if action == "runtime_api":
        return {"address": os.environ["AWS_LAMBDA_RUNTIME_API"]}
    if action == "steal":
        host, port = event["address"].rsplit(":", 1)
        try:
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(3)
            answer = s.recv(4096).decode(errors="replace")
            return {"answer": answer.split("\r\n", 1)[0] if answer else "closed"}
        except OSError as exc:
            return {"answer": code(exc)}
    if action == "connect":
        result = {}
        for host, port in event["targets"]:
            try:
                socket.create_connection((host, port), timeout=3).close()
                result[f"{host}:{port}"] = "ok"
            except OSError as exc:
                result[f"{host}:{port}"] = code(exc)
        return result
    if action == "sleep":
        time.sleep(event["seconds"])
        return "woke"
    if action == "daemon":
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(3600)",
                                          event["marker"]])
            os._exit(0)
        time.sleep(0.2)
        return "spawned"
    if action == "crash":
        os._exit(1)
    return "unknown"
"""

HEALTHY = (
    "def handler(event, context):\n    return {'echo': event['n'], 'id': context.aws_request_id}\n"
)


@pytest.fixture(scope="module", autouse=True)
def namespaces() -> None:
    require_namespaces()


def start(tmp: Path, **settings: Any) -> ServerProcess:
    settings.setdefault("keep_alive", 30)
    server = ServerProcess(tmp, **settings).start()
    assert "namespace sandbox" in server.output(), server.output()
    return server


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start(tmp_path_factory.mktemp("hostile-host"))
    yield server
    assert server.stop() == 0, server.output()


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start(tmp_path_factory.mktemp("hostile-isolated"), network_mode="isolated")
    yield server
    assert server.stop() == 0, server.output()


def deploy(server: ServerProcess, source: str = ATTACKS, **extra: Any) -> str:
    name = f"fn-{uuid.uuid4().hex[:10]}"
    params: dict[str, Any] = {
        "FunctionName": name,
        "Runtime": "python3.11",
        "Role": "arn:aws:iam::000000000000:role/r",
        "Handler": "app.handler",
        "Code": {"ZipFile": zip_files({"app.py": source})},
        "Timeout": 30,
    }
    params.update(extra)
    server.client().create_function(**params)
    return name


@contextlib.contextmanager
def neighbour(server: ServerProcess) -> Iterator[None]:
    """A healthy function invoked again and again while the attack runs; every answer must
    be right, and the server must still be healthy afterwards."""
    lam = server.client()
    name = deploy(server, HEALTHY)
    call(lam, name, {"n": -1})  # warm, so the attack does not race its cold start
    answers: list[bool] = []
    stop = threading.Event()

    def loop() -> None:
        n = 0
        while not stop.is_set() or n < 2:
            body, response = call(lam, name, {"n": n})
            answers.append(
                body.get("echo") == n
                and body.get("id") == response["ResponseMetadata"]["RequestId"]
            )
            n += 1

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive(), "the healthy function stopped answering"
    assert len(answers) >= 2 and all(answers), answers
    assert server.proc is not None and server.proc.poll() is None
    assert httpx.get(f"{server.endpoint}/_lambdalite/health", timeout=5).status_code == 200


def attack(
    server: ServerProcess, event: dict[str, Any], **extra: Any
) -> tuple[Any, dict[str, Any]]:
    name = deploy(server, **extra)
    with neighbour(server):
        return call(server.client(), name, event, LogType="Tail")


def test_reading_etc_shadow(host: ServerProcess) -> None:
    body, response = attack(host, {"action": "read", "paths": ["/etc/shadow", "/etc/gshadow"]})
    assert "FunctionError" not in response
    assert body == {"/etc/shadow": "ENOENT", "/etc/gshadow": "ENOENT"}


def test_reading_the_data_directory(host: ServerProcess) -> None:
    data = str(host.data_dir)
    paths = [data, f"{data}/lambdalite.db", f"{data}/packages", host.log_path.as_posix()]
    body, _ = attack(host, {"action": "listdir", "paths": paths})
    assert body == dict.fromkeys(paths, "ENOENT")


def test_reading_another_functions_code(host: ServerProcess) -> None:
    lam = host.client()
    victim = deploy(host, "SECRET = 'hunter2'\ndef handler(e, c):\n    return SECRET\n")
    digest = base64.b64decode(lam.get_function(FunctionName=victim)["Configuration"]["CodeSha256"])
    victim_code = host.data_dir / "packages" / "code" / digest.hex()
    assert call(lam, victim, {})[0] == "hunter2"
    assert (victim_code / "app.py").exists()  # where it lives on the host
    paths = [
        str(victim_code / "app.py"),
        str(victim_code),
        str(host.data_dir / "packages" / "code"),
    ]
    body, _ = attack(host, {"action": "read", "paths": paths[:1]})
    assert body == {paths[0]: "ENOENT"}
    listing, _ = attack(host, {"action": "listdir", "paths": [*paths[1:], "/var/task"]})
    assert listing == {paths[1]: "ENOENT", paths[2]: "ENOENT", "/var/task": "ok"}


def test_writing_outside_tmp(host: ServerProcess) -> None:
    paths = ["/var/task/app.py", "/var/task/new", "/etc/passwd", "/evil", "/usr/evil",
             "/var/runtime/evil", "/opt/evil", "/proc/sys/kernel/hostname", "/tmp/fine"]  # fmt: skip
    body, _ = attack(host, {"action": "write", "paths": paths})
    assert body.pop("/tmp/fine") == "ok"
    assert all(result in ("EROFS", "EACCES", "ENOENT") for result in body.values()), body


def test_filling_tmp_past_its_size(host: ServerProcess) -> None:
    body, response = attack(
        host, {"action": "fill_tmp"}, MemorySize=1024, EphemeralStorage={"Size": 512}
    )
    assert "FunctionError" not in response
    assert body["error"] == "ENOSPC" and 500 <= body["mb"] <= 512


def test_fork_bomb(host: ServerProcess) -> None:
    body, response = attack(host, {"action": "fork_bomb"}, MemorySize=2048)
    assert "FunctionError" not in response, body
    assert body["error"] == "EAGAIN" and 900 <= body["children"] < 1024


def test_allocating_past_the_memory_size(host: ServerProcess) -> None:
    body, response = attack(host, {"action": "allocate", "mb": 600}, MemorySize=128)
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.OutOfMemory"
    tail = base64.b64decode(response["LogResult"]).decode()
    assert "Max Memory Used: 128 MB" in tail and "Error Type: Runtime.OutOfMemory" in tail


def test_opening_more_than_1024_files(host: ServerProcess) -> None:
    body, _ = attack(host, {"action": "open_files"})
    assert body == {"error": "EMFILE", "open": 1024}


def test_signalling_and_ptracing_outside_the_sandbox(host: ServerProcess) -> None:
    assert host.proc is not None
    outside = [host.proc.pid, os.getpid(), 1]
    body, _ = attack(host, {"action": "signal_and_trace", "pids": outside})
    for pid in outside:
        # Host pids mean nothing in the sandbox (or name its own init, which it may not touch).
        assert body[f"kill {pid}"] in ("ESRCH", "EPERM"), body
        assert body[f"ptrace {pid}"] == "EPERM", body
    assert host.proc.poll() is None
    # The widest kill there is reaches only the function's own processes (here: none but
    # itself, which kill(-1) spares); the neighbour and the server carry on.
    body, _ = attack(host, {"action": "kill_everything"})
    assert body == "ESRCH"


def test_listing_host_processes(host: ServerProcess) -> None:
    body, _ = attack(host, {"action": "processes"})
    assert body["pids"] == [body["me"]] == [2]
    assert body["proc1"] == "ENOENT"


def test_mounting(host: ServerProcess) -> None:
    body, _ = attack(host, {"action": "mount"})
    assert body == dict.fromkeys(("mount", "bind", "unshare userns", "chroot"), "EPERM")


def test_escaping_through_proc(host: ServerProcess) -> None:
    body, _ = attack(host, {"action": "proc_escape", "data_dir": str(host.data_dir)})
    assert body["proc1_root"] == "ENOENT"
    assert body["self_root"] == body["real_root"]
    assert body["cwd_up"] == "/"
    assert body["data_via_root"] == "ENOENT"
    for fd, target in body["fds"].items():
        assert target.startswith(("pipe:", "socket:", "/dev/null", "/proc/")), (fd, target)


def test_connecting_to_another_environments_runtime_api(host: ServerProcess) -> None:
    lam = host.client()
    victim = deploy(host, ATTACKS)
    address = call(lam, victim, {"action": "runtime_api"})[0]["address"]
    body, _ = attack(host, {"action": "steal", "address": address})
    # Dropped unanswered: the victim's Runtime API talks to the victim's runtime only.
    assert body["answer"] in ("closed", "ECONNRESET"), body
    assert call(lam, victim, {"action": "runtime_api"})[0] == {"address": address}


def test_connecting_to_another_environments_runtime_api_isolated(isolated: ServerProcess) -> None:
    lam = isolated.client()
    victim = deploy(isolated, ATTACKS)
    address = call(lam, victim, {"action": "runtime_api"})[0]["address"]
    assert address == "127.0.0.1:9001"
    body, _ = attack(isolated, {"action": "steal", "address": address})
    # The same address inside the attacker's sandbox is its own Runtime API, which refuses a
    # second /next while its own event is unanswered.
    assert body["answer"] == "HTTP/1.1 403 Forbidden", body
    assert call(lam, victim, {"action": "runtime_api"})[0] == {"address": address}


def host_address() -> str:
    """A non-loopback address of this machine, when it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # nothing is sent: this only picks a route
            return str(probe.getsockname()[0])
        except OSError:
            return "192.0.2.1"


def test_reaching_the_control_api_from_isolated_networking(isolated: ServerProcess) -> None:
    targets = [["127.0.0.1", isolated.port], ["localhost", isolated.port],
               [host_address(), isolated.port], ["1.1.1.1", 443]]  # fmt: skip
    body, _ = attack(isolated, {"action": "connect", "targets": targets})
    assert body[f"127.0.0.1:{isolated.port}"] == "ECONNREFUSED"
    assert body[f"localhost:{isolated.port}"] in ("ECONNREFUSED", "EADDRNOTAVAIL", "ENETUNREACH")
    assert body[f"{host_address()}:{isolated.port}"] == "ENETUNREACH"
    assert body["1.1.1.1:443"] == "ENETUNREACH"


def test_sleeping_past_the_timeout(host: ServerProcess) -> None:
    body, response = attack(host, {"action": "sleep", "seconds": 30}, Timeout=1)
    assert body["errorType"] == "Sandbox.Timedout"
    assert "Status: timeout" in base64.b64decode(response["LogResult"]).decode()


def marked(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def until_gone(marker: str, within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while marked(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("ending", ["crash", "timeout", "server stop"])
def test_daemons_never_outlive_their_environment(tmp_path: Path, ending: str) -> None:
    server = start(tmp_path / "data", keep_alive=30)
    try:
        lam = server.client()
        name = deploy(server, ATTACKS, Timeout=1)
        marker = f"lambdalite-daemon-{uuid.uuid4().hex}"
        with neighbour(server):
            assert call(lam, name, {"action": "daemon", "marker": marker})[0] == "spawned"
            assert marked(marker), "the daemon did not start"
            if ending == "crash":
                body, _ = call(lam, name, {"action": "crash"})
                assert body["errorType"] == "Runtime.ExitError"
            elif ending == "timeout":
                body, _ = call(lam, name, {"action": "sleep", "seconds": 5})
                assert body["errorType"] == "Sandbox.Timedout"
            if ending != "server stop":
                assert until_gone(marker), "the daemon outlived its environment"
    finally:
        assert server.stop() == 0
    assert until_gone(marker), "the daemon outlived the server"


def test_the_server_cleans_up_after_a_crash(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start(data)
    lam = server.client()
    name = deploy(server, ATTACKS)
    marker = f"lambdalite-daemon-{uuid.uuid4().hex}"
    assert call(lam, name, {"action": "daemon", "marker": marker})[0] == "spawned"
    assert server.proc is not None
    dead_owner = f"{cgroups.owner_token(server.proc.pid)}_"
    try:
        layout: cgroups.CgroupLayout | None = cgroups.detect()
    except cgroups.CgroupUnavailable:
        layout = None
    server.stop(9)  # SIGKILL: the server cleans nothing up itself
    assert until_gone(marker), "a crashed server's function kept running"
    again = start(data)
    try:
        # The new server swept the dead one's cgroups and runs the function afresh.
        if layout is not None:
            assert not [d for d in layout.memory_root.iterdir() if d.name.startswith(dead_owner)]
        body, _ = call(again.client(), name, {"action": "runtime_api"})
        assert ":" in body["address"]
    finally:
        assert again.stop() == 0
