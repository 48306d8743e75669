"""Node.js response streaming through a real server, observed chunk by chunk with boto3."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from lambdalite.runtimes.registry import NODE_RUNTIMES, RuntimeRegistry
from tests.e2e.harness import create, zip_files

INSTALLED = [r for r in NODE_RUNTIMES if r in RuntimeRegistry().available()]
RUNTIME = INSTALLED[-1] if INSTALLED else None
pytestmark = pytest.mark.skipif(RUNTIME is None, reason="no Node.js 18, 20 or 22 on this host")

STREAMING = """
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
    console.log('streaming', event.pause);
    responseStream.setContentType('text/plain');
    responseStream.write('first;');
    await pause(event.pause);
    responseStream.write('second;');
    if (event.fail) {
        const error = new Error(event.fail);
        error.name = 'StreamBroke';
        throw error;
    }
    await pause(event.pause);
    responseStream.end('third');
});
"""


def deploy(lam: Any, name: str) -> None:
    assert RUNTIME is not None
    create(
        lam,
        name,
        Runtime=RUNTIME,
        Handler="index.handler",
        Code={"ZipFile": zip_files({"index.js": STREAMING})},
        Timeout=10,
    )


def stream(lam: Any, name: str, event: dict[str, Any]) -> list[tuple[float, dict[str, Any]]]:
    """Each event of the response with the moment it was read."""
    response = lam.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps(event).encode(), LogType="Tail"
    )
    assert response["StatusCode"] == 200 and response["ExecutedVersion"] == "$LATEST"
    return [(time.monotonic(), item) for item in response["EventStream"]]


def test_chunks_arrive_while_the_function_runs(lam: Any, name: str) -> None:
    deploy(lam, name)
    received = stream(lam, name, {"pause": 1000})
    chunks = [(at, e["PayloadChunk"]["Payload"]) for at, e in received if "PayloadChunk" in e]
    assert b"".join(data for _, data in chunks) == b"first;second;third"
    assert len(chunks) >= 3
    # The function pauses a second twice after its first write: read as it was written, the
    # first chunk comes well before the end (a buffered response delivers both together).
    first_at, end_at = chunks[0][0], received[-1][0]
    assert chunks[0][1] == b"first;"
    assert end_at - first_at >= 1.0
    complete = received[-1][1]["InvokeComplete"]
    assert "ErrorCode" not in complete
    log = base64.b64decode(complete["LogResult"]).decode()
    assert "streaming 1000" in log and "REPORT RequestId" in log


def test_mid_stream_error_goes_into_the_completion(lam: Any, name: str) -> None:
    deploy(lam, name)
    received = [item for _, item in stream(lam, name, {"pause": 10, "fail": "half way"})]
    data = b"".join(e["PayloadChunk"]["Payload"] for e in received if "PayloadChunk" in e)
    assert data == b"first;second;"
    complete = received[-1]["InvokeComplete"]
    assert complete["ErrorCode"] == "StreamBroke"
    assert complete["ErrorDetails"] == "half way"


def test_plain_invoke_collects_the_stream(lam: Any, name: str) -> None:
    deploy(lam, name)
    response = lam.invoke(FunctionName=name, Payload=json.dumps({"pause": 10}).encode())
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert response["Payload"].read() == b"first;second;third"
    failed = lam.invoke(FunctionName=name, Payload=json.dumps({"pause": 10, "fail": "x"}).encode())
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "StreamBroke"
