"""Invoke through unmodified boto3: results, context, every error kind, logs, throttles."""

from __future__ import annotations

import base64
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.e2e.harness import ServerProcess, create, zip_files


def call(lam: Any, name: str, event: Any = None, **kw: Any) -> tuple[Any, dict[str, Any]]:
    payload = b"" if event is None else json.dumps(event).encode()
    response = lam.invoke(FunctionName=name, Payload=payload, **kw)
    return json.loads(response["Payload"].read()), response


def test_success_context_and_environment(lam: Any, name: str) -> None:
    create(lam, name, MemorySize=256, Timeout=7, Environment={"Variables": {"MY_VAR": "x"}})
    body, response = call(lam, name, {"hello": "world"})
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    assert body["event"] == {"hello": "world"}
    assert body["request_id"] == response["ResponseMetadata"]["RequestId"]
    assert body["function_name"] == name and body["function_version"] == "$LATEST"
    assert body["invoked_arn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert str(body["memory"]) == "256"
    assert 0 < body["remaining_ms"] <= 7000
    env = body["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}"
    assert re.match(
        r"^\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}$", env["AWS_LAMBDA_LOG_STREAM_NAME"]
    )
    assert env["_HANDLER"] == "app.handler" and env["AWS_REGION"] == "us-east-1"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    assert env["MY_VAR"] == "x" and env["LAMBDA_TASK_ROOT"] == body["cwd"]
    assert ":" in env["AWS_LAMBDA_RUNTIME_API"]
    # An empty payload reaches the handler as {}.
    assert call(lam, name)[0]["event"] == {}


def test_warm_reuse_and_parallel_environments(lam: Any, name: str) -> None:
    create(lam, name)
    first, _ = call(lam, name, {})
    second, _ = call(lam, name, {})
    # The log stream names the environment (pids repeat across sandboxes' PID namespaces).
    assert second["log_stream"] == first["log_stream"]
    assert second["calls"] == first["calls"] + 1
    with ThreadPoolExecutor(3) as pool:
        results = list(
            pool.map(lambda _: call(lam, name, {"action": "sleep", "seconds": 1})[0], range(3))
        )
    assert len({r["log_stream"] for r in results}) == 3


def test_tmp_is_writable(lam: Any, name: str) -> None:
    create(lam, name)
    body, _ = call(lam, name, {"action": "tmp"})
    # /tmp may be private to the environment: read the file back from inside, in the next
    # (warm) invocation, where it is still there.
    again, _ = call(lam, name, {"action": "tmp_read", "path": body["written"]})
    assert again == {"read": "ok"}


def test_function_error(lam: Any, name: str) -> None:
    create(lam, name)
    body, response = call(lam, name, {"action": "raise", "message": "nope"})
    assert response["StatusCode"] == 200 and response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError" and body["errorMessage"] == "nope"
    assert body["requestId"] == response["ResponseMetadata"]["RequestId"]
    assert any("app.py" in line for line in body["stackTrace"])
    # The environment survives a handled exception.
    assert call(lam, name, {})[0]["calls"] == 2


def test_timeout(lam: Any, name: str) -> None:
    create(lam, name, Timeout=1)
    before, _ = call(lam, name, {})
    body, response = call(lam, name, {"action": "sleep", "seconds": 5}, LogType="Tail")
    request_id = response["ResponseMetadata"]["RequestId"]
    assert response["FunctionError"] == "Unhandled"
    assert body == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {request_id} Error: Task timed out after 1.00 seconds",
    }
    tail = base64.b64decode(response["LogResult"]).decode()
    assert f"{request_id} Task timed out after 1.00 seconds" in tail
    assert "Status: timeout" in tail
    after, _ = call(lam, name, {})
    assert after["log_stream"] != before["log_stream"] and after["calls"] == 1


def test_crash(lam: Any, name: str) -> None:
    create(lam, name)
    body, response = call(lam, name, {"action": "exit", "code": 3})
    request_id = response["ResponseMetadata"]["RequestId"]
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert (
        body["errorMessage"]
        == f"RequestId: {request_id} Error: Runtime exited with error: exit status 3"
    )
    assert call(lam, name, {})[0]["calls"] == 1


def test_out_of_memory(lam: Any, name: str) -> None:
    create(lam, name, MemorySize=128)
    body, response = call(lam, name, {"action": "allocate", "mb": 400}, LogType="Tail")
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.OutOfMemory"
    tail = base64.b64decode(response["LogResult"]).decode()
    assert "Error Type: Runtime.OutOfMemory" in tail
    assert "Max Memory Used: 128 MB" in tail


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        (
            "imports.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'imports': No module named 'module_that_does_not_exist'",
        ),
        ("syntax.handler", "Runtime.UserCodeSyntaxError", "Syntax error in module 'syntax'"),
        ("app.nope", "Runtime.HandlerNotFound", "Handler 'nope' missing on module 'app'"),
    ],
)
def test_init_errors(lam: Any, name: str, handler: str, error_type: str, message: str) -> None:
    create(lam, name, fixture="errors", Handler=handler)
    body, response = call(lam, name, {}, LogType="Tail")
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == error_type and message in body["errorMessage"]
    tail = base64.b64decode(response["LogResult"]).decode()
    assert f"Error Type: {error_type}" in tail


def test_response_too_large(lam: Any, name: str) -> None:
    create(lam, name)
    body, response = call(lam, name, {"action": "big", "bytes": 7 * 1024 * 1024})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Function.ResponseSizeTooLarge"


def test_payload_checks(lam: Any, name: str) -> None:
    create(lam, name)
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=name, Payload=b"x" * (6 * 1024 * 1024 + 1))
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert exc.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    with pytest.raises(ClientError) as exc:
        lam.invoke(
            FunctionName=name,
            InvocationType="Event",
            Payload=json.dumps({"x": "y" * (1024 * 1024)}).encode(),
        )
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    with pytest.raises(lam.exceptions.InvalidRequestContentException):
        lam.invoke(FunctionName=name, Payload=b"{not json")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName=name + "-missing", Payload=b"{}")


def test_tail_client_context_dry_run(lam: Any, name: str) -> None:
    create(lam, name)
    context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    body, response = call(lam, name, {"a": 1}, LogType="Tail", ClientContext=context)
    assert body["client_context"] == {"k": "v"}
    tail = base64.b64decode(response["LogResult"]).decode()
    request_id = response["ResponseMetadata"]["RequestId"]
    assert f"START RequestId: {request_id} Version: $LATEST" in tail
    assert f"END RequestId: {request_id}" in tail
    assert re.search(
        rf"REPORT RequestId: {request_id}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
        r"Memory Size: 128 MB\tMax Memory Used: \d+ MB",
        tail,
    )
    assert 'event {"a": 1}' in tail
    assert len(response["LogResult"]) <= 4096 * 4 / 3 + 4
    dry = lam.invoke(FunctionName=name, InvocationType="DryRun")
    assert dry["StatusCode"] == 204
    with pytest.raises(lam.exceptions.InvalidRequestContentException):
        lam.invoke(FunctionName=name, ClientContext="!!!notbase64")


def test_event_invocation_runs(server: ServerProcess, lam: Any, name: str) -> None:
    create(lam, name)
    response = lam.invoke(
        FunctionName=name, InvocationType="Event", Payload=json.dumps({"marker": name}).encode()
    )
    assert response["StatusCode"] == 202
    logs = server.client("logs")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            events = logs.filter_log_events(
                logGroupName=f"/aws/lambda/{name}", filterPattern=f'"{name}"'
            )["events"]
        except logs.exceptions.ResourceNotFoundException:
            events = []
        if any(name in e["message"] for e in events):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the asynchronous invocation never ran")


def test_reserved_concurrency_throttles(lam: Any, name: str) -> None:
    create(lam, name)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(lam.exceptions.TooManyRequestsException) as exc:
        lam.invoke(FunctionName=name, Payload=b"{}")
    error = exc.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert error["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(call, lam, name, {"action": "sleep", "seconds": 2})
        time.sleep(0.5)
        with pytest.raises(lam.exceptions.TooManyRequestsException) as exc:
            lam.invoke(FunctionName=name, Payload=b"{}")
        assert exc.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        assert slow.result()[1]["StatusCode"] == 200


def test_account_limit_throttles(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, account_concurrency=2, unreserved_concurrency_min=1).start()
    try:
        lam = server.client()
        create(lam, "slow")
        with ThreadPoolExecutor(2) as pool:
            running = [
                pool.submit(call, lam, "slow", {"action": "sleep", "seconds": 2}) for _ in range(2)
            ]
            time.sleep(0.7)
            with pytest.raises(lam.exceptions.TooManyRequestsException) as exc:
                lam.invoke(FunctionName="slow", Payload=b"{}")
            assert exc.value.response["Reason"] == "ConcurrentInvocationLimitExceeded"
            assert all(f.result()[1]["StatusCode"] == 200 for f in running)
    finally:
        assert server.stop() == 0


def test_invoke_updated_code_replaces_environment(lam: Any, name: str) -> None:
    create(lam, name, Code={"ZipFile": zip_files({"app.py": "def handler(e, c):\n    return 1\n"})})
    assert call(lam, name, {})[0] == 1
    lam.update_function_code(
        FunctionName=name, ZipFile=zip_files({"app.py": "def handler(e, c):\n    return 2\n"})
    )
    assert call(lam, name, {})[0] == 2
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"MY_V": "3"}})
    lam.update_function_code(
        FunctionName=name,
        ZipFile=zip_files(
            {"app.py": "import os\ndef handler(e, c):\n    return os.environ['MY_V']\n"}
        ),
    )
    assert call(lam, name, {})[0] == "3"
