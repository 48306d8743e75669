"""What an execution environment is, seen from inside and from the host, through a real server.

The namespace sandbox needs root (see ``require_namespaces``); the process backend's weaker
isolation is checked everywhere.
"""

from __future__ import annotations

import base64
import os
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from lambdalite.sandbox import cgroups
from tests.e2e.harness import ServerProcess, zip_files
from tests.e2e.test_invoke import call
from tests.unit.sandbox.conftest import require_namespaces

INSPECT = r"""
import os, socket, time

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return line.split()[1]

def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    vfs = os.statvfs("/tmp")
    return {
        "env": {k: v for k, v in os.environ.items()
                if k.startswith(("LAMBDA_", "AWS_LAMBDA_RUNTIME_API", "LD_LIBRARY_PATH", "PATH"))},
        "cwd": os.getcwd(), "uid": os.getuid(), "pid": os.getpid(),
        "caps": status("CapEff"), "bounding": status("CapBnd"),
        "nnp": status("NoNewPrivs"), "seccomp": status("Seccomp"),
        "tmp_mb": vfs.f_blocks * vfs.f_frsize // 2**20, "hostname": socket.gethostname(),
        "interfaces": sorted(name for _, name in socket.if_nameindex()),
        "task": sorted(os.listdir(os.environ["LAMBDA_TASK_ROOT"])),
    }
"""


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    require_namespaces()
    server = ServerProcess(tmp_path_factory.mktemp("isolation"), keep_alive=30).start()
    yield server
    assert server.stop() == 0, server.output()


def deploy(server: ServerProcess, **extra: Any) -> str:
    name = f"fn-{uuid.uuid4().hex[:10]}"
    server.client().create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role="arn:aws:iam::000000000000:role/r",
        Handler="app.handler",
        Code={"ZipFile": zip_files({"app.py": INSPECT})},
        **extra,
    )
    return name


def test_the_environment_seen_from_inside(sandboxed: ServerProcess) -> None:
    name = deploy(sandboxed, MemorySize=256, EphemeralStorage={"Size": 600})
    body, response = call(sandboxed.client(), name, {}, LogType="Tail")
    env = body["env"]
    assert env["LAMBDA_TASK_ROOT"] == "/var/task" == body["cwd"]
    assert env["LAMBDA_RUNTIME_DIR"] == "/var/runtime"
    assert "/var/task" in env["LD_LIBRARY_PATH"].split(":")
    assert re.fullmatch(r"127\.0\.0\.1:\d+", env["AWS_LAMBDA_RUNTIME_API"])
    assert body["task"] == ["app.py"]
    assert body["uid"] >= 2**30 and body["pid"] == 2
    assert body["caps"] == body["bounding"] == "0000000000000000"
    assert body["nnp"] == "1" and body["seccomp"] == "2"
    assert body["tmp_mb"] == 600 and body["hostname"] == "localhost"
    tail = base64.b64decode(response["LogResult"]).decode()
    used = int(re.search(r"Max Memory Used: (\d+) MB", tail).group(1))  # type: ignore[union-attr]
    assert 1 <= used <= 256


def test_each_environment_has_its_own_identity(sandboxed: ServerProcess) -> None:
    lam = sandboxed.client()
    name = deploy(sandboxed)
    with ThreadPoolExecutor(3) as pool:
        bodies = list(pool.map(lambda _: call(lam, name, {"sleep": 1})[0], range(3)))
    assert len({b["uid"] for b in bodies}) == 3


def server_cgroups(server: ServerProcess) -> list[Path]:
    """The sandbox cgroups (memory hierarchy) of ``server``'s environments."""
    assert server.proc is not None
    owner = cgroups.owner_token(server.proc.pid)
    layout = cgroups.detect()  # the server is our child: it shares our cgroups
    return [d for d in layout.memory_root.iterdir() if d.name.startswith(f"{owner}_")]


def test_cgroup_limits_seen_from_the_host(sandboxed: ServerProcess) -> None:
    try:
        layout = cgroups.detect()
    except cgroups.CgroupUnavailable as exc:
        pytest.skip(f"no cgroups here: {exc}")
    lam = sandboxed.client()
    name = deploy(sandboxed, MemorySize=1769)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(call, lam, name, {"sleep": 1.5})
        deadline = time.monotonic() + 10
        found: list[Path] = []
        while time.monotonic() < deadline:
            found = [d for d in server_cgroups(sandboxed) if (d / "cgroup.procs").read_text()]
            limits = {(d / "memory.limit_in_bytes").read_text().strip() for d in found}
            if str(1769 * 2**20) in limits:
                break
            time.sleep(0.05)
        assert running.result()[0]["cwd"] == "/var/task"
    group = next(
        d for d in found if (d / "memory.limit_in_bytes").read_text().strip() == str(1769 * 2**20)
    )
    if layout.pids_root is not None:
        assert (layout.pids_root / group.name / "pids.max").read_text().strip() == "1024"
    if layout.cpu_root is not None:
        assert (layout.cpu_root / group.name / "cpu.shares").read_text().strip() == "1024"


def test_environments_leave_nothing_behind(tmp_path: Path) -> None:
    require_namespaces()
    server = ServerProcess(tmp_path / "data", keep_alive=0.5).start()
    try:
        name = deploy(server)
        assert call(server.client(), name, {})[0]["cwd"] == "/var/task"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if not server_cgroups(server):
                    break
            except cgroups.CgroupUnavailable:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the idle environment's cgroups outlived it")
        assert list((tmp_path / "data" / "sandbox" / "root").iterdir()) == []
    finally:
        assert server.stop() == 0


def test_isolated_networking(tmp_path: Path) -> None:
    require_namespaces()
    server = ServerProcess(tmp_path / "data", network_mode="isolated").start()
    try:
        assert "own network namespace" in server.output()
        name = deploy(server)
        lam = server.client()
        first, _ = call(lam, name, {})
        assert first["env"]["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:9001"
        assert first["interfaces"] == ["lo"]
        # Warm reuse and parallel environments work over the in-sandbox listener too.
        with ThreadPoolExecutor(2) as pool:
            bodies = list(pool.map(lambda _: call(lam, name, {"sleep": 1})[0], range(2)))
        assert {b["env"]["AWS_LAMBDA_RUNTIME_API"] for b in bodies} == {"127.0.0.1:9001"}
        assert len({b["uid"] for b in bodies}) == 2
    finally:
        assert server.stop() == 0


def test_process_backend_still_works_and_says_it_is_weaker(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", sandbox="process").start()
    try:
        assert "process sandbox" in server.output() and "WARNING" in server.output()
        name = deploy(server)
        body, _ = call(server.client(), name, {})
        assert body["cwd"] == body["env"]["LAMBDA_TASK_ROOT"] != "/var/task"
        assert "app.py" in body["task"] and body["uid"] == os.geteuid()
    finally:
        assert server.stop() == 0


def test_isolated_networking_is_refused_without_namespaces(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", sandbox="process", network_mode="isolated")
    with pytest.raises(RuntimeError, match="isolated needs sandbox=namespace"):
        server.start()
    server.stop()
