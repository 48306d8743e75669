"""OS-only runtimes (``provided.al2023``, ``provided.al2``, ``provided``): the function's own
``bootstrap``, from its code or a layer, against the Runtime API, in both sandbox backends."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.customruntime import (
    BOOTSTRAP,
    STREAMING_BOOTSTRAP,
    tutorial_package,
    zip_with_modes,
)
from tests.e2e.harness import ROLE, ServerProcess
from tests.e2e.test_awslambdaric import APP, _add_tree

MISSING = "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]"
BACKENDS = ["namespace", "process"] if os.geteuid() == 0 else ["process"]


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("provided"), sandbox=request.param).start()
    yield process
    assert process.stop() == 0, process.output()


@pytest.fixture(scope="module")
def lam(server: ServerProcess) -> Any:
    return server.client("lambda")


@pytest.fixture
def name() -> str:
    return f"fn-{uuid.uuid4().hex[:10]}"


def create(lam: Any, name: str, code: bytes, **extra: Any) -> None:
    params: dict[str, Any] = {
        "FunctionName": name,
        "Runtime": "provided.al2023",
        "Role": ROLE,
        "Handler": "function.handler",
        "Code": {"ZipFile": code},
        "Timeout": 5,
    }
    params.update(extra)
    lam.create_function(**params)


def invoke(lam: Any, name: str, payload: Any, **extra: Any) -> tuple[dict[str, Any], Any]:
    response = lam.invoke(FunctionName=name, Payload=json.dumps(payload).encode(), **extra)
    return response, json.loads(response["Payload"].read())


def log_of(response: dict[str, Any]) -> str:
    return base64.b64decode(response["LogResult"]).decode()


def stored_log(server: ServerProcess, name: str, wanted: str) -> str:
    """The function's whole log from the CloudWatch Logs API, once it holds ``wanted``."""
    logs = server.client("logs")
    deadline = time.monotonic() + 10
    while True:
        try:
            events = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
        except logs.exceptions.ResourceNotFoundException:  # nothing written yet
            events = []
        text = "\n".join(e["message"].rstrip("\n") for e in events)
        if wanted in text or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


@pytest.mark.parametrize("runtime", ["provided.al2023", "provided.al2", "provided"])
def test_tutorial_bootstrap_answers_with_context(
    lam: Any, name: str, server: ServerProcess, runtime: str
) -> None:
    create(lam, name, tutorial_package(), Runtime=runtime)
    context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    before = time.time()
    response, body = invoke(lam, name, {"n": 1}, LogType="Tail", ClientContext=context)
    assert "FunctionError" not in response, body
    assert body["event"] == {"n": 1}
    assert body["requestId"] == response["ResponseMetadata"]["RequestId"]
    assert before * 1000 + 4000 < body["deadlineMs"] < time.time() * 1000 + 5500
    assert body["arn"].endswith(f":function:{name}")
    assert body["trace"].startswith("Root=1-")
    assert body["clientContext"]["custom"] == {"k": "v"}
    # As on AWS, OS-only runtimes get no AWS_EXECUTION_ENV.
    assert body["executionEnv"] == "unset" and body["handler"] == "function.handler"
    if server.settings["sandbox"] == "namespace":
        assert body["taskRoot"] == "/var/task" and body["user"] != "0"
    log = log_of(response)
    assert 'handling {"n": 1}' in log
    assert "REPORT RequestId" in log and "Init Duration" in log
    # Warm: the loop picks up the next event in the same environment.
    second, again = invoke(lam, name, {"n": 2}, LogType="Tail")
    assert again["event"] == {"n": 2} and "Init Duration" not in log_of(second)


def test_error_post_is_the_function_error(lam: Any, name: str) -> None:
    create(lam, name, tutorial_package())
    response, body = invoke(lam, name, {"fail": True})
    assert response["FunctionError"] == "Unhandled"
    assert body == {"errorMessage": "the shell handler failed", "errorType": "CustomFailure"}
    # A handler error keeps the environment: the loop answers the next event.
    _, ok = invoke(lam, name, {"after": 1})
    assert ok["event"] == {"after": 1}


def test_timeout_resets_the_environment(lam: Any, name: str) -> None:
    create(lam, name, tutorial_package(), Timeout=1)
    response, body = invoke(lam, name, {"sleep": True}, LogType="Tail")
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert body["errorMessage"].endswith("Task timed out after 1.00 seconds")
    assert "Status: timeout" in log_of(response)
    fresh, ok = invoke(lam, name, {"n": 3}, LogType="Tail")
    assert ok["event"] == {"n": 3} and "Init Duration" in log_of(fresh)


def test_missing_bootstrap_is_an_invalid_entrypoint(
    lam: Any, name: str, server: ServerProcess
) -> None:
    create(lam, name, tutorial_package(with_bootstrap=False))
    response, body = invoke(lam, name, {}, LogType="Tail")
    request_id = response["ResponseMetadata"]["RequestId"]
    assert response["FunctionError"] == "Unhandled"
    assert body == {
        "errorType": "Runtime.InvalidEntrypoint",
        "errorMessage": f"RequestId: {request_id} Error: {MISSING}",
    }
    assert "Status: error\tError Type: Runtime.InvalidEntrypoint" in log_of(response)
    wanted = f"Error: {MISSING}\nRuntime.InvalidEntrypoint"
    assert wanted in stored_log(server, name, wanted)


def test_bootstrap_from_a_layer(lam: Any, name: str) -> None:
    layer = lam.publish_layer_version(
        LayerName=f"rt-{name}",
        Content={"ZipFile": zip_with_modes({"bootstrap": (BOOTSTRAP, 0o755)})},
        CompatibleRuntimes=["provided.al2023"],
    )
    create(lam, name, tutorial_package(with_bootstrap=False), Layers=[layer["LayerVersionArn"]])
    response, body = invoke(lam, name, {"layer": True})
    assert "FunctionError" not in response, body
    assert body["event"] == {"layer": True}


def _system_python() -> str | None:
    """A system interpreter of this interpreter's version (awslambdaric's C extension is
    built for it), outside any virtual environment: what a sandbox shows."""
    wanted = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for directory in ("/usr/bin", "/usr/local/bin"):
        candidate = Path(directory) / wanted
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


@pytest.mark.skipif(_system_python() is None, reason="no system python of the test's version")
def test_awslambdaric_as_a_custom_runtime(lam: Any, name: str) -> None:
    import io
    import zipfile

    import awslambdaric
    import runtime_client
    import simplejson
    import snapshot_restore_py

    bootstrap = f'#!/bin/sh\nexec {_system_python()} -m awslambdaric "$_HANDLER"\n'
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", APP)
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o100755 << 16
        zf.writestr(info, bootstrap)
        for module in (awslambdaric, simplejson):
            _add_tree(zf, Path(module.__file__ or "").parent)
        for module in (runtime_client, snapshot_restore_py):
            _add_tree(zf, Path(module.__file__ or ""))
    create(lam, name, buf.getvalue(), Handler="app.handler")
    response, body = invoke(lam, name, {"a": 1})
    assert "FunctionError" not in response, body
    assert body["ric"] is True and body["event"] == {"a": 1}
    assert body["client"].startswith("awslambdaric")
    failed, error = invoke(lam, name, {"fail": True})
    assert failed["FunctionError"] == "Unhandled"
    assert error["errorType"] == "RuntimeError" and error["errorMessage"] == "ric failure"


def _arrivals(events: Any) -> list[tuple[float, bytes]]:
    return [(time.monotonic(), e["PayloadChunk"]["Payload"]) for e in events if "PayloadChunk" in e]


def test_streaming_custom_runtime(lam: Any, name: str, server: ServerProcess) -> None:
    create(lam, name, zip_with_modes({"bootstrap": (STREAMING_BOOTSTRAP, 0o755)}))
    response = lam.invoke_with_response_stream(FunctionName=name, Payload=b"{}")
    received = list(response["EventStream"])
    chunks = [e["PayloadChunk"]["Payload"] for e in received if "PayloadChunk" in e]
    assert b"".join(chunks) == b"first;second;third"
    assert len(chunks) >= 3
    assert "ErrorCode" not in received[-1]["InvokeComplete"]
    # Chunk by chunk: the first part arrives long before the end.
    streamed = lam.invoke_with_response_stream(FunctionName=name, Payload=b"{}")
    timed = _arrivals(streamed["EventStream"])
    assert timed[0][1].startswith(b"first;") and timed[-1][0] - timed[0][0] > 0.3

    url = lam.create_function_url_config(
        FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM"
    )["FunctionUrl"]
    lam.add_permission(
        FunctionName=name,
        StatementId="public",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    address = f"{server.endpoint}/lambda-url/{url.split('//')[1][:32]}/path"
    with httpx.stream("GET", address, timeout=30) as http:
        parts = [(time.monotonic(), chunk) for chunk in http.iter_raw() if chunk]
    assert http.status_code == 201 and http.headers["x-runtime"] == "shell"
    assert b"".join(p for _, p in parts) == b"first;second;third"
    assert parts[0][1].startswith(b"first;") and parts[-1][0] - parts[0][0] > 0.3
