"""Successful invocations: warm reuse, concurrency, and what a runtime process sees."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path

from .conftest import Harness, decoded, make_spec, run_async

COUNTER = """
import os
N = 0
def handler(event, context):
    global N
    N += 1
    return {"pid": os.getpid(), "n": N, "event": event}
"""


def test_success_and_warm_reuse(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness() as h:
            spec = make_spec(code(COUNTER))
            first = await h.invoke(spec, b'{"a": 1}')
            second = await h.invoke(spec, b'{"a": 2}')
            assert first.function_error is None and first.error_type is None
            one, two = decoded(first), decoded(second)
            assert one["event"] == {"a": 1} and two["event"] == {"a": 2}
            assert one["pid"] == two["pid"]  # same process...
            assert (one["n"], two["n"]) == (1, 2)  # ...with its globals kept
            assert first.init_duration_ms is not None and first.init_duration_ms > 0
            assert second.init_duration_ms is None
            assert first.log_stream == second.log_stream
            assert first.billed_ms >= 1 and first.max_memory_mb > 0
            assert first.content_type == "application/json"
            assert len(h.manager.environments()) == 1

    scenario()


def test_parallel_invocations_get_separate_environments(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness() as h:
            spec = make_spec(code(COUNTER))
            results = await asyncio.gather(h.invoke(spec), h.invoke(spec))
            pids = {decoded(r)["pid"] for r in results}
            assert len(pids) == 2
            assert all(r.init_duration_ms is not None for r in results)
            assert len(h.manager.environments()) == 2
            # Both are idle now; a third invocation reuses one of them.
            third = decoded(await h.invoke(spec))
            assert third["pid"] in pids and third["n"] == 2

    scenario()


def test_revisions_and_versions_do_not_share_environments(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness() as h:
            directory = code(COUNTER)
            base = decoded(await h.invoke(make_spec(directory)))
            other_revision = decoded(await h.invoke(make_spec(directory, revision="r2")))
            version_1 = decoded(await h.invoke(make_spec(directory, version="1")))
            assert len({base["pid"], other_revision["pid"], version_1["pid"]}) == 3

    scenario()


ENV_DUMP = """
import os
def handler(event, context):
    return {"env": dict(os.environ), "cwd": os.getcwd(), "context": context}
"""


def test_runtime_environment_variables(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness() as h:
            directory = code(ENV_DUMP)
            spec = make_spec(
                directory,
                memory_mb=256,
                log_level="DEBUG",
                environment={"MY_VAR": "x", "AWS_REGION": "eu-west-9", "LANG": "C.UTF-8"},
            )
            result = await h.invoke(spec, client_context='{"env":{"k":"v"}}', trace_id="Root=1-abc")
            body = decoded(result)
            env, context = body["env"], body["context"]
            assert body["cwd"] == str(directory)
            assert re.fullmatch(r"127\.0\.0\.1:\d+", env["AWS_LAMBDA_RUNTIME_API"])
            assert env["_HANDLER"] == "app.handler"
            assert env["LAMBDA_TASK_ROOT"] == str(directory)
            assert env["LAMBDA_RUNTIME_DIR"]
            assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"  # reserved wins
            assert env["MY_VAR"] == "x" and env["LANG"] == "C.UTF-8"  # unreserved: user wins
            assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
            assert env["AWS_LAMBDA_FUNCTION_NAME"] == "fn"
            assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
            assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
            assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
            assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/fn"
            assert env["AWS_LAMBDA_LOG_STREAM_NAME"] == result.log_stream
            assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", result.log_stream)
            assert env["AWS_LAMBDA_LOG_FORMAT"] == "Text"
            assert env["AWS_LAMBDA_LOG_LEVEL"] == "DEBUG"
            assert env["TZ"] == ":UTC"
            assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]
            assert env["AWS_SESSION_TOKEN"]
            assert "/usr/bin" in env["PATH"].split(":") or "/usr/bin/" in env["PATH"].split(":")
            assert env["LD_LIBRARY_PATH"].startswith("/lib64:/usr/lib64:")
            assert f"{directory}/lib" in env["LD_LIBRARY_PATH"]
            assert "PYTHONUNBUFFERED" not in env
            assert json.loads(context["lambda-runtime-client-context"]) == {"env": {"k": "v"}}
            assert context["lambda-runtime-trace-id"] == "Root=1-abc"

    scenario()


def test_exec_wrapper_runs_in_front_of_the_runtime(
    code: Callable[[str], Path], tmp_path: Path
) -> None:
    wrapper = tmp_path / "wrapper.sh"
    wrapper.write_text('#!/bin/sh\nexport WRAPPED="yes:$1"\nexec "$@"\n')
    wrapper.chmod(0o755)

    @run_async
    async def scenario() -> None:
        async with Harness() as h:
            spec = make_spec(code(ENV_DUMP), environment={"AWS_LAMBDA_EXEC_WRAPPER": str(wrapper)})
            env = decoded(await h.invoke(spec))["env"]
            assert env["WRAPPED"].startswith("yes:") and env["WRAPPED"].endswith("python")
            assert env["AWS_LAMBDA_EXEC_WRAPPER"] == str(wrapper)

    scenario()


def test_raw_bytes_response_keeps_its_content_type(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness() as h:
            spec = make_spec(code("def handler(event, context):\n    return b'\\x00raw'\n"))
            result = await h.invoke(spec, b"")
            assert result.payload == b"\x00raw"
            assert result.content_type == "application/json"  # the tiny client sends none

    scenario()
