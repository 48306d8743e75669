"""SnapStart under namespace sandboxes: each restored copy is a sandbox of its own.

Two copies of one version run at once; from inside each, and from the host, the test checks
what every namespace environment guarantees: its own PID namespace (only its own processes
in ``/proc``, nothing of the template or the other copy, none of them reachable by a signal),
a private ``/tmp``, a uid of its own, no capabilities, ``no_new_privs``, the strict seccomp
filter, and a cgroup of its own with the version's memory limit.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from lambdalite.runtimes.registry import RuntimeRegistry
from tests.e2e.harness import ROLE, ServerProcess, zip_files

RUNTIME = next(
    (r for r in ("python3.12", "python3.13", "python3.14") if RuntimeRegistry().resolve(r)), None
)
pytestmark = pytest.mark.skipif(RUNTIME is None, reason="no python3.12+ interpreter on this host")

PROBE = """
import errno, os, pwd, random, time
from snapshot_restore_py import register_after_restore

INIT = {
    "uid": os.getuid(),
    "pidns": os.readlink("/proc/self/ns/pid"),
    "netns": os.readlink("/proc/self/ns/net"),
    "random": random.random(),
}
RESTORED = {}

@register_after_restore
def after():
    RESTORED["random"] = random.random()

def status(pid):
    with open(f"/proc/{pid}/status") as fh:
        return dict(line.rstrip("\\n").split(":\\t", 1) for line in fh if ":\\t" in line)

def handler(event, context):
    if event.get("write"):
        with open("/tmp/mine", "w") as fh:
            fh.write(event["write"])
    processes = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                processes[entry] = int(status(entry)["Uid"].split()[0])
            except OSError:
                pass
    signals = {}
    for pid in event.get("kill", []):
        try:
            os.kill(pid, 0)
            signals[str(pid)] = "delivered"
        except OSError as exc:
            signals[str(pid)] = errno.errorcode[exc.errno]
    own = status("self")
    refused = {}
    for name, call in (("unshare", lambda: os.unshare(os.CLONE_NEWUSER)),
                       ("setuid", lambda: os.setuid(0))):
        try:
            call()
            refused[name] = "allowed"
        except OSError as exc:
            refused[name] = errno.errorcode[exc.errno]
    with open("/proc/self/cgroup") as fh:
        cgroups = fh.read()
    links = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    with open("/proc/net/unix") as fh:
        unix = {line.split()[6] for line in list(fh)[1:]}
    time.sleep(event.get("sleep", 0))
    return {
        "init": INIT,
        "restored": RESTORED,
        "uid": os.getuid(),
        "gid": os.getgid(),
        "pid": os.getpid(),
        "pidns": os.readlink("/proc/self/ns/pid"),
        "tmp": sorted(os.listdir("/tmp")),
        "processes": processes,
        "signals": signals,
        "refused": refused,
        "caps": [own["CapEff"], own["CapPrm"], own["CapBnd"]],
        "no_new_privs": own["NoNewPrivs"],
        "seccomp": own["Seccomp"],
        "cgroups": cgroups,
        "unix_sockets": [link for link in links if link[8:-1] in unix],
        "hostname": os.uname().nodename,
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "netns": os.readlink("/proc/self/ns/net"),
        "api": os.environ["AWS_LAMBDA_RUNTIME_API"],
    }
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: Any) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("snap-iso"), sandbox="namespace", keep_alive=60)
    try:
        proc.start()
    except RuntimeError as exc:
        pytest.skip(f"namespace sandboxes unavailable here: {exc}")
    yield proc
    code = proc.stop()
    assert code == 0, proc.output()


def _publish(lam: Any, name: str, source: str, memory: int = 128) -> str:
    lam.create_function(
        FunctionName=name,
        Runtime=RUNTIME,
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": zip_files({"app.py": source})},
        Timeout=10,
        MemorySize=memory,
        SnapStart={"ApplyOn": "PublishedVersions"},
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name)
    version = str(lam.publish_version(FunctionName=name)["Version"])
    lam.get_waiter("function_active_v2").wait(
        FunctionName=name, Qualifier=version, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    return version


def _invoke(lam: Any, name: str, version: str, event: dict[str, Any]) -> dict[str, Any]:
    response = lam.invoke(FunctionName=name, Qualifier=version, Payload=json.dumps(event))
    assert "FunctionError" not in response, response["Payload"].read()
    result: dict[str, Any] = json.loads(response["Payload"].read())
    return result


def _host_processes(name: str) -> dict[int, dict[str, Any]]:
    """Host pid -> (namespace depth, uid, pid namespace, memory cgroup) of every process of
    function ``name``'s sandboxes (found by the environment they were started with)."""
    found: dict[int, dict[str, Any]] = {}
    wanted = f"AWS_LAMBDA_FUNCTION_NAME={name}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if wanted not in fh.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/status") as fh:
                status = dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)
            with open(f"/proc/{entry}/cgroup") as fh:
                memory = next(
                    (line.split(":", 2)[2].strip() for line in fh if ":memory:" in line), ""
                )
            found[int(entry)] = {
                "depth": len(status["NSpid"].split()),
                "uid": int(status["Uid"].split()[0]),
                "pidns": os.readlink(f"/proc/{entry}/ns/pid"),
                "memory": memory,
            }
        except (OSError, KeyError):
            continue
    return found


def test_two_restored_copies_are_isolated(server: ServerProcess) -> None:
    lam = server.client("lambda", read_timeout=120)
    name = f"snap-iso-{uuid.uuid4().hex[:8]}"
    version = _publish(lam, name, PROBE)
    events = [{"write": "one", "sleep": 1.5}, {"sleep": 1.5}]
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda e: _invoke(lam, name, version, e), events)
    copies = (first, second)

    # Restored from one INIT, reseeded, after-restore hooks run in each.
    assert first["init"] == second["init"]
    assert first["restored"]["random"] != second["restored"]["random"]

    # Own uid per copy: not the template's (root of its user namespace), not each other's.
    assert first["init"]["uid"] == 0
    assert 0 not in (first["uid"], second["uid"])
    assert first["uid"] != second["uid"]
    assert first["gid"] == first["uid"] and second["gid"] == second["uid"]

    # Private /tmp.
    assert first["tmp"] == ["mine"]
    assert second["tmp"] == []

    # Own PID namespace: nested below the template's, only the copy's own processes in /proc
    # (its init and its runtime, both under its own uid).
    for copy in copies:
        assert copy["pidns"] != copy["init"]["pidns"]
        assert copy["pid"] == 2
        assert set(copy["processes"]) == {"1", "2"}, copy["processes"]
        assert set(copy["processes"].values()) == {copy["uid"]}
    assert first["pidns"] != second["pidns"]

    # No privileges: no capabilities at all, no_new_privs, the strict filter.
    for copy in copies:
        assert copy["caps"] == ["0000000000000000"] * 3
        assert copy["no_new_privs"] == "1"
        assert copy["seccomp"] == "2"
        assert copy["refused"] == {"unshare": "EPERM", "setuid": "EPERM"}
        assert "memory:/\n" in copy["cgroups"]  # a cgroup namespace rooted at its own
        assert copy["hostname"] == "localhost"
        assert copy["user"] == "sbx_user1051"
        # Nothing of the platform's plumbing (the template's control socket, the copy's own)
        # is left open in the function's process.
        assert copy["unix_sockets"] == []

    # From the host: the template and each copy, in cgroups of their own with the limit.
    host = _host_processes(name)
    templates = [pid for pid, info in host.items() if info["depth"] == 2]
    copies_by_ns: dict[str, list[int]] = {}
    for pid, info in host.items():
        if info["depth"] == 3:
            copies_by_ns.setdefault(info["pidns"], []).append(pid)
    assert len(templates) == 1, host
    template = host[templates[0]]
    assert (1 << 29) <= template["uid"] < (1 << 30)
    for copy in copies:
        pids = copies_by_ns[copy["pidns"]]  # the same link text inside and out
        assert {host[p]["uid"] for p in pids} == {template["uid"] + copy["uid"]}
        memory = {host[p]["memory"] for p in pids}
        assert len(memory) == 1 and template["memory"] not in memory
        assert _memory_limit(memory.pop()) == 128 << 20

    # Neither copy can reach the other, the template, or any other process of the version.
    everyone = sorted(host)
    with ThreadPoolExecutor(2) as pool:
        warm = list(
            pool.map(lambda _: _invoke(lam, name, version, {"kill": everyone, "sleep": 1}), "ab")
        )
    for result in warm:
        assert set(result["signals"].values()) == {"ESRCH"}, result["signals"]


def _memory_limit(path: str) -> int | None:
    """The memory limit of the (v1 or v2) cgroup at ``path``; None without a memory mount."""
    for candidate in (
        f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes",
        f"/sys/fs/cgroup{path}/memory.max",
    ):
        try:
            with open(candidate) as fh:
                return int(fh.read())
        except (OSError, ValueError):
            continue
    return None


def test_isolated_network_copies(tmp_path_factory: Any) -> None:
    """With ``network_mode=isolated`` each copy has a network namespace of its own, holding
    only its Runtime API listener at the fixed in-sandbox address."""
    proc = ServerProcess(
        tmp_path_factory.mktemp("snap-iso-net"), sandbox="namespace", network_mode="isolated"
    )
    try:
        proc.start()
    except RuntimeError as exc:
        pytest.skip(f"namespace sandboxes unavailable here: {exc}")
    try:
        lam = proc.client("lambda", read_timeout=120)
        name = f"snap-net-{uuid.uuid4().hex[:8]}"
        version = _publish(lam, name, PROBE)
        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(
                lambda e: _invoke(lam, name, version, e), [{"sleep": 1}, {"sleep": 1}]
            )
        for copy in (first, second):
            assert copy["api"] == "127.0.0.1:9001"
            assert copy["netns"] != copy["init"]["netns"]
            assert copy["caps"] == ["0000000000000000"] * 3
        assert first["netns"] != second["netns"]
        assert first["uid"] != second["uid"]
    finally:
        code = proc.stop()
    assert code == 0, proc.output()
