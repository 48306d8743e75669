"""InvokeWithResponseStream, parsed by boto3's own EventStream reader."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.e2e.harness import create


def events(response: dict[str, Any]) -> list[dict[str, Any]]:
    return list(response["EventStream"])


def test_stream_carries_the_result(lam: Any, name: str) -> None:
    create(lam, name)
    response = lam.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"streamed": True}).encode(), LogType="Tail"
    )
    assert response["StatusCode"] == 200 and response["ExecutedVersion"] == "$LATEST"
    received = events(response)
    chunks = b"".join(e["PayloadChunk"]["Payload"] for e in received if "PayloadChunk" in e)
    assert json.loads(chunks)["event"] == {"streamed": True}
    complete = received[-1]["InvokeComplete"]
    assert "ErrorCode" not in complete
    assert "REPORT RequestId" in base64.b64decode(complete["LogResult"]).decode()


def test_stream_reports_errors_in_completion(lam: Any, name: str) -> None:
    create(lam, name)
    response = lam.invoke_with_response_stream(
        FunctionName=name,
        Payload=json.dumps({"action": "raise", "message": "streamed boom"}).encode(),
    )
    assert response["StatusCode"] == 200
    received = events(response)
    assert not any("PayloadChunk" in e for e in received)
    complete = received[-1]["InvokeComplete"]
    assert complete["ErrorCode"] == "ValueError" and complete["ErrorDetails"] == "streamed boom"
    assert (
        lam.invoke_with_response_stream(FunctionName=name, InvocationType="DryRun")["StatusCode"]
        == 204
    )
