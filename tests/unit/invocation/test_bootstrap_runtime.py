"""lambdalite's own Python runtime client against the Runtime API, end to end."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from lambdalite.invocation.model import FunctionSpec

from .conftest import Harness, decoded, make_spec, run_async

BOOTSTRAP = Path(__file__).resolve().parents[3] / "src/lambdalite/runtimes/python/bootstrap.py"
pytestmark = pytest.mark.skipif(not BOOTSTRAP.exists(), reason="bootstrap.py not present")


def bootstrap_command(spec: FunctionSpec) -> list[str]:
    return [sys.executable, str(BOOTSTRAP)]


APP = """
import os
COUNT = 0
def handler(event, context):
    global COUNT
    COUNT += 1
    if event.get("fail"):
        raise KeyError("nope")
    print("in handler")
    return {"pid": os.getpid(), "count": COUNT, "request_id": context.aws_request_id}
"""


def test_success_error_and_reuse(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness(command=bootstrap_command) as h:
            spec = make_spec(code(APP))
            first = await h.invoke(spec, request_id="b-1")
            body = decoded(first)
            assert first.function_error is None and body["request_id"] == "b-1"
            failed = await h.invoke(spec, b'{"fail": true}')
            assert failed.function_error == "Unhandled" and failed.error_type == "KeyError"
            assert json.loads(failed.payload)["errorType"] == "KeyError"
            again = decoded(await h.invoke(spec))
            assert (again["pid"], again["count"]) == (body["pid"], 3)
            messages = h.sink.messages()
            assert messages.index("in handler") < messages.index("END RequestId: b-1")

    scenario()


def test_missing_handler_is_an_init_error(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness(command=bootstrap_command) as h:
            result = await h.invoke(make_spec(code(APP), handler="app.absent"))
            assert result.function_error == "Unhandled"
            assert result.error_type == "Runtime.HandlerNotFound"
            assert json.loads(result.payload)["errorType"] == "Runtime.HandlerNotFound"

    scenario()
