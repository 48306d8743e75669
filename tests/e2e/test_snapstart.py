"""SnapStart end to end: configuration, version states, runtime hooks, restored environments.

Real servers, real boto3, both sandbox backends. SnapStart needs python3.12 or later, so the
module is skipped when this host has no such interpreter.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.exceptions
import pytest

from lambdalite.runtimes.registry import RuntimeRegistry
from tests.e2e.harness import ROLE, ServerProcess, zip_files

RUNTIME = next(
    (r for r in ("python3.12", "python3.13", "python3.14") if RuntimeRegistry().resolve(r)), None
)
pytestmark = pytest.mark.skipif(RUNTIME is None, reason="no python3.12+ interpreter on this host")

SNAPSTART = {"ApplyOn": "PublishedVersions"}
RESTORE_LIMIT_S = 4

SLOW_AFTER = """
import time
from snapshot_restore_py import register_after_restore

register_after_restore(time.sleep, 6)

def handler(event, context):
    return "unreachable"
"""

HOOKED = """
import os, random, time
from snapshot_restore_py import register_before_snapshot, register_after_restore

ORDER = []
STATE = {
    "init_pid": os.getpid(),
    "init_pidns": os.readlink("/proc/self/ns/pid"),
    "init_random": random.random(),
    # Names this INIT for real: a freed namespace's inode number may be given out again.
    "init_token": os.urandom(8).hex(),
}

@register_before_snapshot
def first_before():
    ORDER.append("before-1")

@register_before_snapshot
def second_before():
    ORDER.append("before-2")

def after(tag):
    ORDER.append(tag)
    STATE["restored_random"] = random.random()

register_after_restore(after, "after-1")
register_after_restore(after, tag="after-2")

def handler(event, context):
    if event.get("write"):
        with open("/tmp/marker", "w") as fh:
            fh.write(event["write"])
    seen = None
    if os.path.exists("/tmp/marker"):
        with open("/tmp/marker") as fh:
            seen = fh.read()
    time.sleep(event.get("sleep", 0))
    return {
        "order": ORDER,
        "state": STATE,
        "pid": os.getpid(),
        # Namespace sandboxes number processes per sandbox: this names the process for real.
        "proc": (os.readlink("/proc/self/ns/pid"), os.getpid()),
        "init_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
        "stream": context.log_stream_name,
        "env_stream": os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME"),
        "api": os.environ.get("AWS_LAMBDA_RUNTIME_API"),
        "marker": seen,
    }
"""

FAILING_BEFORE = """
from snapshot_restore_py import register_before_snapshot

@register_before_snapshot
def refuse():
    raise ValueError("cannot snapshot this")

def handler(event, context):
    return "unreachable"
"""

FAILING_AFTER = """
from snapshot_restore_py import register_after_restore

@register_after_restore
def refuse():
    raise RuntimeError("cannot restore this")

def handler(event, context):
    return "unreachable"
"""


@pytest.fixture(scope="module", params=["process", "namespace"])
def snap_server(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[ServerProcess]:
    sandbox = request.param
    proc = ServerProcess(
        tmp_path_factory.mktemp(f"snap-{sandbox}"),
        sandbox=sandbox,
        keep_alive=30,
        init_timeout=RESTORE_LIMIT_S,  # also the restore limit (10 s by default, as on Lambda)
    )
    try:
        proc.start()
    except RuntimeError as exc:
        if sandbox == "namespace":
            pytest.skip(f"namespace sandboxes unavailable here: {exc}")
        raise
    yield proc
    code = proc.stop()
    assert code == 0, proc.output()


@pytest.fixture
def lam(snap_server: ServerProcess) -> Any:
    return snap_server.client("lambda", read_timeout=120)


@pytest.fixture
def logs(snap_server: ServerProcess) -> Any:
    return snap_server.client("logs")


@pytest.fixture
def fn() -> str:
    return f"snap-{uuid.uuid4().hex[:10]}"


def _create(lam: Any, name: str, source: str, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "FunctionName": name,
        "Runtime": RUNTIME,
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": zip_files({"app.py": source})},
        "Timeout": 10,
    }
    params.update(extra)
    result: dict[str, Any] = lam.create_function(**params)
    lam.get_waiter("function_active_v2").wait(FunctionName=name)
    return result


def _publish_active(lam: Any, name: str) -> str:
    version = str(lam.publish_version(FunctionName=name)["Version"])
    lam.get_waiter("function_active_v2").wait(
        FunctionName=name, Qualifier=version, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    return version


def _invoke(lam: Any, name: str, qualifier: str, event: dict[str, Any] | None = None) -> Any:
    response = lam.invoke(
        FunctionName=name, Qualifier=qualifier, Payload=json.dumps(event or {}).encode()
    )
    assert "FunctionError" not in response, response["Payload"].read()
    return json.loads(response["Payload"].read())


def _log_lines(logs: Any, name: str, wanted: str, count: int = 1) -> list[str]:
    deadline = time.monotonic() + 10
    while True:
        events = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
        lines = [str(e["message"]) for e in events]
        if sum(wanted in line for line in lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


# -- configuration ----------------------------------------------------------------------------
def test_configuration_round_trip(lam: Any, fn: str) -> None:
    created = _create(lam, fn, HOOKED, SnapStart=SNAPSTART)
    assert created["SnapStart"] == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "Off"}
    got = lam.get_function_configuration(FunctionName=fn)
    assert got["SnapStart"] == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "Off"}
    updated = lam.update_function_configuration(FunctionName=fn, SnapStart={"ApplyOn": "None"})
    assert updated["SnapStart"] == {"ApplyOn": "None", "OptimizationStatus": "Off"}
    lam.get_waiter("function_updated_v2").wait(FunctionName=fn)
    version = lam.publish_version(FunctionName=fn)
    assert version["State"] == "Active"
    assert version["SnapStart"] == {"ApplyOn": "None", "OptimizationStatus": "Off"}


def test_unsupported_runtime_is_rejected(lam: Any, fn: str) -> None:
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as info:
        _create(lam, fn, HOOKED, Runtime="python3.11", SnapStart=SNAPSTART)
    assert info.value.response["Error"]["Message"] == (
        "python3.11 is not supported for SnapStart enabled functions."
    )
    _create(lam, fn, HOOKED, Runtime="python3.11")
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.update_function_configuration(FunctionName=fn, SnapStart=SNAPSTART)
    with pytest.raises(botocore.exceptions.ClientError) as bad:
        lam.update_function_configuration(FunctionName=fn, SnapStart={"ApplyOn": "Always"})
    assert bad.value.response["Error"]["Code"] == "ValidationException"
    assert "snapStart.applyOn" in bad.value.response["Error"]["Message"]


# -- publishing -------------------------------------------------------------------------------
def test_publish_is_pending_then_active(lam: Any, fn: str, snap_server: ServerProcess) -> None:
    _create(lam, fn, HOOKED, SnapStart=SNAPSTART)
    published = lam.publish_version(FunctionName=fn)
    assert published["State"] == "Pending"
    assert published["StateReasonCode"] == "Creating"
    assert published["SnapStart"] == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "On"}
    version = published["Version"]
    lam.get_waiter("function_active_v2").wait(FunctionName=fn, Qualifier=version)
    active = lam.get_function_configuration(FunctionName=fn, Qualifier=version)
    assert active["State"] == "Active"
    assert active["SnapStart"]["OptimizationStatus"] == "On"
    listed = lam.list_versions_by_function(FunctionName=fn)["Versions"]
    assert [v["SnapStart"]["OptimizationStatus"] for v in listed] == ["Off", "On"]
    # $LATEST is never snapshotted: an ordinary INIT, no hooks.
    latest = _invoke(lam, fn, "$LATEST")
    assert latest["init_type"] == "on-demand"
    assert latest["order"] == []


# -- restores ---------------------------------------------------------------------------------
def test_restored_environments(lam: Any, logs: Any, fn: str, snap_server: ServerProcess) -> None:
    _create(lam, fn, HOOKED, SnapStart=SNAPSTART)
    version = _publish_active(lam, fn)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: _invoke(lam, fn, version, {"sleep": 1}), range(2)))
    first, second = results
    for result in results:
        assert result["order"] == ["before-2", "before-1", "after-1", "after-2"]
        assert result["init_type"] == "snap-start"
        assert result["stream"] == result["env_stream"]
        assert result["proc"] != [result["state"]["init_pidns"], result["state"]["init_pid"]]
    # Both came from one initialization, yet each is an environment of its own.
    assert first["state"]["init_pid"] == second["state"]["init_pid"]
    assert first["state"]["init_pidns"] == second["state"]["init_pidns"]
    assert first["state"]["init_random"] == second["state"]["init_random"]
    assert first["state"]["restored_random"] != second["state"]["restored_random"]
    assert first["proc"] != second["proc"]
    assert first["stream"] != second["stream"]
    assert first["api"] != second["api"]
    lines = _log_lines(logs, fn, "Billed Restore Duration", 2)
    reports = [line for line in lines if line.startswith("REPORT")]
    restored = [line for line in reports if "\tRestore Duration: " in line]
    assert len(restored) == 2, lines
    for line in restored:
        assert "Init Duration" not in line
        assert "\tBilled Restore Duration: " in line
    assert sum(line.startswith("RESTORE_START") for line in lines) == 2
    assert any(line.startswith("RESTORE_REPORT Restore Duration: ") for line in lines)
    # A warm invocation of a restored environment reports nothing of the restore.
    again = _invoke(lam, fn, version)
    assert again["proc"] in (first["proc"], second["proc"])


def test_before_snapshot_error_fails_the_version(
    lam: Any, fn: str, snap_server: ServerProcess
) -> None:
    _create(lam, fn, FAILING_BEFORE, SnapStart=SNAPSTART)
    version = lam.publish_version(FunctionName=fn)["Version"]
    with pytest.raises(botocore.exceptions.WaiterError):
        lam.get_waiter("function_active_v2").wait(
            FunctionName=fn, Qualifier=version, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
    failed = lam.get_function_configuration(FunctionName=fn, Qualifier=version)
    assert failed["State"] == "Failed"
    assert failed["StateReasonCode"] == "FunctionError"
    assert failed["StateReason"].startswith("Runtime.BeforeSnapshotError")
    assert "cannot snapshot this" in failed["StateReason"]
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.invoke(FunctionName=fn, Qualifier=version)


def test_after_restore_error(lam: Any, logs: Any, fn: str, snap_server: ServerProcess) -> None:
    _create(lam, fn, FAILING_AFTER, SnapStart=SNAPSTART)
    version = _publish_active(lam, fn)
    with pytest.raises(lam.exceptions.SnapStartException) as info:
        lam.invoke(FunctionName=fn, Qualifier=version)
    assert "afterRestore()" in info.value.response["Error"]["Message"]
    lines = _log_lines(logs, fn, "Runtime.AfterRestoreError")
    assert any(
        "Runtime.AfterRestoreError" in line and "cannot restore this" in line for line in lines
    )


def test_restore_timeout(lam: Any, fn: str, snap_server: ServerProcess) -> None:
    _create(lam, fn, SLOW_AFTER, SnapStart=SNAPSTART)
    version = _publish_active(lam, fn)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        lam.invoke(FunctionName=fn, Qualifier=version)
    assert info.value.response["Error"]["Code"] == "SnapStartTimeoutException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 408


def test_tmp_is_private_to_each_restored_environment(
    lam: Any, fn: str, snap_server: ServerProcess
) -> None:
    if "namespace sandbox" not in snap_server.output():
        pytest.skip("process sandboxes share the host's /tmp by design")
    _create(lam, fn, HOOKED, SnapStart=SNAPSTART)
    version = _publish_active(lam, fn)
    events = [{"write": "one", "sleep": 1}, {"sleep": 1}]
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda e: _invoke(lam, fn, version, e), events)
    assert first["marker"] == "one"
    assert second["marker"] is None
    assert first["proc"] != second["proc"]


def test_pending_version_is_not_invocable(lam: Any, fn: str, snap_server: ServerProcess) -> None:
    slow = HOOKED.replace("ORDER = []", "ORDER = []\ntime.sleep(3)")
    _create(lam, fn, slow, SnapStart=SNAPSTART)
    version = lam.publish_version(FunctionName=fn)["Version"]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        lam.invoke(FunctionName=fn, Qualifier=version)
    assert info.value.response["Error"]["Code"] == "SnapStartNotReadyException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409


def test_snapstart_module_is_importable_without_snapstart(lam: Any, fn: str) -> None:
    _create(lam, fn, HOOKED)
    result = _invoke(lam, fn, "$LATEST")
    assert result["order"] == []
    assert result["init_type"] == "on-demand"


def test_restored_environment_has_the_versions_memory_limit(
    lam: Any, fn: str, snap_server: ServerProcess
) -> None:
    hungry = HOOKED.replace(
        '    time.sleep(event.get("sleep", 0))',
        '    hoard = [bytearray(16 << 20) for _ in range(event.get("chunks", 0))]\n'
        '    time.sleep(event.get("sleep", 0))',
    )
    _create(lam, fn, hungry, SnapStart=SNAPSTART, MemorySize=128)
    version = _publish_active(lam, fn)
    response = lam.invoke(FunctionName=fn, Qualifier=version, Payload=b'{"chunks": 16}')
    assert response.get("FunctionError") == "Unhandled"
    assert json.loads(response["Payload"].read())["errorType"] == "Runtime.OutOfMemory"
    # The template was not the one killed: the next environment is restored again.
    after = _invoke(lam, fn, version)
    assert after["init_type"] == "snap-start"
    assert after["order"] == ["before-2", "before-1", "after-1", "after-2"]


def test_lost_template_is_made_again(lam: Any, fn: str, snap_server: ServerProcess) -> None:
    _create(lam, fn, HOOKED, SnapStart=SNAPSTART)
    version = _publish_active(lam, fn)
    first = _invoke(lam, fn, version)
    template = host_pid(first["state"]["init_pidns"], first["state"]["init_pid"])
    os.kill(template, signal.SIGKILL)
    _wait_until_dead(template)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: _invoke(lam, fn, version, {"sleep": 1}), range(2)))
    fresh = [r for r in results if r["proc"] != first["proc"]]
    assert fresh, results
    for result in fresh:
        assert result["init_type"] == "snap-start"
        assert result["state"]["init_token"] != first["state"]["init_token"]


def host_pid(pidns: str, pid: int) -> int:
    """The host pid of the process numbered ``pid`` in the PID namespace ``pidns`` (the
    ``/proc/<pid>/ns/pid`` link text): a namespace sandbox numbers its processes from 1."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != pidns:
                continue
            with open(f"/proc/{entry}/status") as fh:
                nspid = next(line for line in fh if line.startswith("NSpid:")).split()
        except (OSError, StopIteration):
            continue
        if int(nspid[-1]) == pid:
            return int(entry)
    raise AssertionError(f"no process {pid} in {pidns}")


def _wait_until_dead(pid: int) -> None:
    """Until ``pid`` is a zombie or gone (a SIGKILL takes effect asynchronously)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except OSError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not die")
