"""Unmodified awslambdaric (AWS's Python runtime interface client) against our Runtime API."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import RIC_PYTHON, Harness, decoded, make_spec, ric_command, run_async

pytestmark = pytest.mark.skipif(
    not (RIC_PYTHON.parent / "python").exists(), reason="awslambdaric venv missing"
)

APP = """
import os
COUNT = 0
def handler(event, context):
    global COUNT
    COUNT += 1
    if event.get("fail"):
        raise ValueError("it broke")
    print("handled", context.aws_request_id)
    return {
        "pid": os.getpid(),
        "count": COUNT,
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "memory": context.memory_limit_in_mb,
        "stream": context.log_stream_name,
        "client_context": context.client_context.custom if context.client_context else None,
        "event": event,
    }
"""


def test_success_and_warm_reuse(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness(command=ric_command) as h:
            spec = make_spec(code(APP), timeout_s=3)
            first = await h.invoke(
                spec,
                b'{"x": [1, 2]}',
                request_id="ric-1",
                client_context='{"custom": {"k": "v"}}',
            )
            assert first.function_error is None
            body = decoded(first)
            assert body["request_id"] == "ric-1"
            assert body["event"] == {"x": [1, 2]}
            assert body["arn"] == "arn:aws:lambda:us-east-1:000000000000:function:fn"
            assert 0 < body["remaining_ms"] <= 3000
            assert body["memory"] == "128"
            assert body["stream"] == first.log_stream
            assert body["client_context"] == {"k": "v"}
            second = decoded(await h.invoke(spec))
            assert (second["pid"], second["count"]) == (body["pid"], 2)
            messages = h.sink.messages()
            assert "handled ric-1" in messages
            assert messages.index("handled ric-1") < messages.index("END RequestId: ric-1")

    scenario()


def test_exception_is_a_handled_function_error(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness(command=ric_command) as h:
            spec = make_spec(code(APP))
            result = await h.invoke(spec, b'{"fail": true}', request_id="ric-err")
            assert result.function_error == "Unhandled"
            assert result.error_type == "ValueError"  # from the body: awslambdaric sends no header
            body = json.loads(result.payload)
            assert body["errorType"] == "ValueError"
            assert body["errorMessage"] == "it broke"
            assert body["requestId"] == "ric-err"
            assert isinstance(body["stackTrace"], list)
            # The environment survives a handler exception.
            again = await h.invoke(spec)
            assert again.init_duration_ms is None and decoded(again)["count"] == 2
            assert any(m.startswith("[ERROR] ValueError: it broke") for m in h.sink.messages())

    scenario()


def test_handler_not_found_is_an_init_error(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness(command=ric_command) as h:
            spec = make_spec(code(APP), handler="app.missing")
            result = await h.invoke(spec, request_id="ric-init")
            assert result.function_error == "Unhandled"
            assert result.error_type == "Runtime.HandlerNotFound"
            body = json.loads(result.payload)
            assert body["errorType"] == "Runtime.HandlerNotFound"
            assert "missing" in body["errorMessage"]
            init_report = next(m for m in h.sink.messages() if m.startswith("INIT_REPORT"))
            assert init_report.endswith("Status: error\tError Type: Runtime.HandlerNotFound")

    scenario()


def test_large_response_goes_through_expect_continue(code: Callable[[str], Path]) -> None:
    """libcurl sends large bodies with ``Expect: 100-continue``."""

    @run_async
    async def scenario() -> None:
        async with Harness(command=ric_command) as h:
            source = "def handler(event, context):\n    return 'z' * (2 * 1024 * 1024)\n"
            result = await h.invoke(make_spec(code(source)))
            assert result.function_error is None
            assert json.loads(result.payload) == "z" * (2 * 1024 * 1024)

    scenario()
