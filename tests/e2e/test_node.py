"""Node.js functions through a real server and unmodified boto3."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from lambdalite.runtimes.registry import NODE_RUNTIMES, RuntimeRegistry
from tests.e2e.harness import create, zip_files

INSTALLED = [r for r in NODE_RUNTIMES if r in RuntimeRegistry().available()]
RUNTIME = INSTALLED[-1] if INSTALLED else None
pytestmark = pytest.mark.skipif(RUNTIME is None, reason="no Node.js 18, 20 or 22 on this host")

COMMONJS = """
exports.handler = async (event, context) => {
    console.log('hello from %s', 'node', { requestId: context.awsRequestId });
    if (event.fail) {
        const error = new Error(event.fail);
        error.name = 'OrderFailed';
        throw error;
    }
    return {
        event,
        requestId: context.awsRequestId,
        functionName: context.functionName,
        arn: context.invokedFunctionArn,
        memory: context.memoryLimitInMB,
        remaining: context.getRemainingTimeInMillis(),
        executionEnv: process.env.AWS_EXECUTION_ENV,
        node: process.versions.node,
        cwd: process.cwd(),
        taskRoot: process.env.LAMBDA_TASK_ROOT,
    };
};
"""

ESM = """
import { createHash } from 'node:crypto';
const digest = (text) => createHash('sha256').update(text).digest('hex').slice(0, 8);
export const handler = async (event) => ({ module: 'esm', digest: digest(event.text) });
"""


def invoke(lam: Any, name: str, event: Any) -> tuple[Any, dict[str, Any], str]:
    response = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode(), LogType="Tail")
    log = base64.b64decode(response["LogResult"]).decode()
    return json.loads(response["Payload"].read()), response, log


def test_commonjs_handler_context_and_log_line(lam: Any, name: str) -> None:
    assert RUNTIME is not None
    create(
        lam,
        name,
        Runtime=RUNTIME,
        Handler="index.handler",
        Code={"ZipFile": zip_files({"index.js": COMMONJS})},
        Timeout=5,
    )
    body, response, log = invoke(lam, name, {"order": 7})
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    request_id = response["ResponseMetadata"]["RequestId"]
    assert body["event"] == {"order": 7}
    assert body["requestId"] == request_id
    assert body["functionName"] == name
    assert body["arn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert body["memory"] == "128"
    assert 0 < body["remaining"] <= 5000
    assert body["executionEnv"] == f"AWS_Lambda_{RUNTIME}"
    assert body["node"].split(".")[0] == RUNTIME[len("nodejs") : -len(".x")]
    assert body["cwd"] == body["taskRoot"]
    line = f"\t{request_id}\tINFO\thello from node {{ requestId: '{request_id}' }}\n"
    assert line in log, log
    assert f"START RequestId: {request_id}" in log and f"REPORT RequestId: {request_id}" in log


def test_es_module_handler(lam: Any, name: str) -> None:
    assert RUNTIME is not None
    create(
        lam,
        name,
        Runtime=RUNTIME,
        Handler="src/app.handler",
        Code={"ZipFile": zip_files({"src/app.mjs": ESM})},
    )
    body, response, _ = invoke(lam, name, {"text": "lambdalite"})
    assert "FunctionError" not in response
    assert body == {"module": "esm", "digest": hashlib.sha256(b"lambdalite").hexdigest()[:8]}


def test_handler_error_shape(lam: Any, name: str) -> None:
    assert RUNTIME is not None
    create(
        lam,
        name,
        Runtime=RUNTIME,
        Handler="index.handler",
        Code={"ZipFile": zip_files({"index.js": COMMONJS})},
    )
    body, response, log = invoke(lam, name, {"fail": "out of stock"})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "OrderFailed"
    assert body["errorMessage"] == "out of stock"
    assert body["trace"][0] == "OrderFailed: out of stock"
    assert "\tERROR\tInvoke Error \t" in log
    # The environment survives a handler error.
    body, response, _ = invoke(lam, name, {"order": 8})
    assert "FunctionError" not in response and body["event"] == {"order": 8}


def test_missing_handler_is_an_init_error(lam: Any, name: str) -> None:
    assert RUNTIME is not None
    create(
        lam,
        name,
        Runtime=RUNTIME,
        Handler="index.nope",
        Code={"ZipFile": zip_files({"index.js": COMMONJS})},
    )
    body, response, log = invoke(lam, name, {})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.HandlerNotFound"
    assert body["errorMessage"] == "index.nope is undefined or not exported"
    assert "Runtime.HandlerNotFound" in log


def test_missing_node_major_is_a_create_error(lam: Any, name: str) -> None:
    missing = [r for r in NODE_RUNTIMES if r not in INSTALLED]
    if not missing:
        pytest.skip("Node.js 18, 20 and 22 are all installed here")
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as exc:
        create(lam, name, Runtime=missing[0], Handler="index.handler")
    message = exc.value.response["Error"]["Message"]
    assert f"Runtime {missing[0]} is not available" in message
    assert "LAMBDALITE_NODE_RUNTIMES" in message


SLOW = """
let started = 0;
exports.handler = async (event) => {
    started += 1;
    if (event.sleep) {
        await new Promise((resolve) => setTimeout(resolve, event.sleep));
    }
    return { started };
};
"""


def test_timeout_resets_the_environment(lam: Any, name: str) -> None:
    assert RUNTIME is not None
    create(
        lam,
        name,
        Runtime=RUNTIME,
        Handler="index.handler",
        Timeout=1,
        Code={"ZipFile": zip_files({"index.js": SLOW})},
    )
    body, response, log = invoke(lam, name, {"sleep": 5000})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert body["errorMessage"].endswith("Task timed out after 1.00 seconds")
    assert "Status: timeout" in log
    # The timed-out environment was reset: the next invocation starts a fresh one.
    body, response, log = invoke(lam, name, {})
    assert "FunctionError" not in response and body == {"started": 1}
    assert "Init Duration" in log
