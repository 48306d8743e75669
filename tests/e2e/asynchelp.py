"""Helpers for asynchronous invocation tests: what functions logged, records destinations got."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.e2e.harness import ServerProcess

ACCOUNT = "000000000000"


def fn_arn(name: str, qualifier: str | None = None) -> str:
    base = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def log_lines(server: ServerProcess, function: str) -> list[dict[str, Any]]:
    logs = server.client("logs")
    events: list[dict[str, Any]] = []
    request: dict[str, Any] = {"logGroupName": f"/aws/lambda/{function}"}
    while True:
        try:
            page = logs.filter_log_events(**request)
        except logs.exceptions.ResourceNotFoundException:
            return []
        events += page["events"]
        if not page.get("nextToken"):
            return events
        request["nextToken"] = page["nextToken"]


def received_events(server: ServerProcess, function: str) -> list[Any]:
    """Events a ``basic`` fixture function was invoked with (it prints ``event <json>``)."""
    return [
        json.loads(e["message"][len("event ") :])
        for e in log_lines(server, function)
        if e["message"].startswith("event ")
    ]


def starts(server: ServerProcess, function: str, request_id: str) -> list[int]:
    """Timestamps (ms) of the START lines of one request id: one per attempt."""
    return sorted(
        e["timestamp"]
        for e in log_lines(server, function)
        if e["message"].startswith(f"START RequestId: {request_id}")
    )


def wait_for(probe: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def records_for(server: ServerProcess, destination: str, request_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in received_events(server, destination)
        if isinstance(e, dict) and e.get("requestContext", {}).get("requestId") == request_id
    ]


def wait_record(
    server: ServerProcess, destination: str, request_id: str, timeout: float = 30.0
) -> dict[str, Any]:
    found: list[dict[str, Any]] = wait_for(
        lambda: records_for(server, destination, request_id), timeout
    )
    return found[0]


def stats(server: ServerProcess) -> dict[str, Any]:
    result: dict[str, Any] = httpx.get(f"{server.endpoint}/_lambdalite/stats", timeout=10).json()
    return result


def send_event(lam: Any, name: str, event: Any, **kw: Any) -> str:
    response = lam.invoke(
        FunctionName=name, InvocationType="Event", Payload=json.dumps(event).encode(), **kw
    )
    assert response["StatusCode"] == 202
    request_id: str = response["ResponseMetadata"]["RequestId"]
    return request_id
