"""Everything that can go wrong inside an environment, and what the caller sees."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from lambdalite.sandbox import ProcessSandboxBackend

from .conftest import Harness, decoded, make_spec, run_async

PID_THEN = """
import os, sys, time
def handler(event, context):
    action = event.get("do")
    if action == "sleep":
        time.sleep(30)
    if action == "exit":
        sys.stdout.write("bye\\n")
        os._exit(3)
    if action == "raise":
        raise ValueError("boom")
    if action == "big":
        return "x" * (6 * 1024 * 1024 + 200)
    if action == "alloc":
        hog = b"\\x01" * (400 * 1024 * 1024)
        time.sleep(10)
        return len(hog)
    return {"pid": os.getpid()}
"""


def report_lines(h: Harness) -> list[str]:
    return [m for m in h.sink.messages() if m.startswith("REPORT ")]


def test_timeout_resets_the_environment(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness() as h:
            spec = make_spec(code(PID_THEN), timeout_s=1)
            before = decoded(await h.invoke(spec))["pid"]
            result = await h.invoke(spec, b'{"do": "sleep"}')
            rid = json.loads(result.payload)["errorMessage"].split()[1]
            assert result.function_error == "Unhandled"
            assert result.error_type == "Sandbox.Timedout"
            assert json.loads(result.payload) == {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {rid} Error: Task timed out after 1.00 seconds",
            }
            assert result.duration_ms == 1000.0
            messages = h.sink.messages()
            timed_out = [m for m in messages if "Task timed out" in m]
            assert len(timed_out) == 1
            assert re.fullmatch(
                rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z {rid} "
                r"Task timed out after 1\.00 seconds",
                timed_out[0],
            )
            assert report_lines(h)[-1].endswith("\tStatus: timeout\t")
            assert "Duration: 1000.00 ms" in report_lines(h)[-1]
            after = await h.invoke(spec)
            assert after.init_duration_ms is not None  # cold again
            assert decoded(after)["pid"] != before

    scenario()


def test_runtime_exit_is_an_exit_error(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness() as h:
            spec = make_spec(code(PID_THEN))
            result = await h.invoke(spec, b'{"do": "exit"}', request_id="rid-exit")
            assert result.function_error == "Unhandled"
            assert result.error_type == "Runtime.ExitError"
            assert json.loads(result.payload) == {
                "errorType": "Runtime.ExitError",
                "errorMessage": "RequestId: rid-exit Error: "
                "Runtime exited with error: exit status 3",
            }
            messages = h.sink.messages()
            assert "bye" in messages
            assert (
                "RequestId: rid-exit Error: Runtime exited with error: exit status 3\n"
                "Runtime.ExitError"
            ) in messages
            assert report_lines(h)[-1].endswith("\tStatus: error\tError Type: Runtime.ExitError\t")
            assert messages.index("bye") < messages.index("END RequestId: rid-exit")
            again = await h.invoke(spec)
            assert again.function_error is None and again.init_duration_ms is not None

    scenario()


def test_handler_error_keeps_the_environment_warm(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness() as h:
            spec = make_spec(code(PID_THEN))
            first = decoded(await h.invoke(spec))["pid"]
            result = await h.invoke(spec, b'{"do": "raise"}')
            assert result.function_error == "Unhandled"
            assert result.error_type == "ValueError"
            assert json.loads(result.payload) == {"errorMessage": "boom", "errorType": "ValueError"}
            assert "Status:" not in report_lines(h)[-1]
            assert decoded(await h.invoke(spec))["pid"] == first

    scenario()


def test_response_too_large(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness() as h:
            spec = make_spec(code(PID_THEN))
            result = await h.invoke(spec, b'{"do": "big"}')
            assert result.function_error == "Unhandled"
            assert result.error_type == "Function.ResponseSizeTooLarge"
            assert json.loads(result.payload) == {
                "errorType": "Function.ResponseSizeTooLarge",
                "errorMessage": "Response payload size exceeded maximum allowed payload size "
                "(6291556 bytes).",
            }
            assert report_lines(h)[-1].endswith(
                "\tStatus: error\tError Type: Function.ResponseSizeTooLarge\t"
            )
            assert decoded(await h.invoke(spec))["pid"] > 0  # still usable

    scenario()


def _cgroups_available() -> bool:
    return ProcessSandboxBackend().mode == "cgroup"


@pytest.mark.parametrize("mode", ["cgroup", "poll"])
def test_out_of_memory(code: Callable[[str], Path], mode: str) -> None:
    if mode == "cgroup" and not _cgroups_available():
        pytest.skip("no writable memory cgroup on this host")

    @run_async
    async def scenario() -> None:
        async with Harness(enforcement=mode) as h:
            spec = make_spec(code(PID_THEN), memory_mb=128, timeout_s=20)
            result = await h.invoke(spec, b'{"do": "alloc"}', request_id="rid-oom")
            assert result.function_error == "Unhandled"
            assert result.error_type == "Runtime.OutOfMemory"
            assert json.loads(result.payload) == {
                "errorType": "Runtime.OutOfMemory",
                "errorMessage": "RequestId: rid-oom Error: "
                "Runtime exited with error: signal: killed",
            }
            assert result.max_memory_mb == 128
            report = report_lines(h)[-1]
            assert "\tMemory Size: 128 MB\tMax Memory Used: 128 MB\t" in report
            assert report.endswith("\tStatus: error\tError Type: Runtime.OutOfMemory\t")
            assert (await h.invoke(spec)).init_duration_ms is not None

    scenario()


def test_init_error_fails_the_triggering_invocation(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness() as h:
            spec = make_spec(code("import not_a_module_here\n"))
            result = await h.invoke(spec, request_id="rid-init")
            assert result.function_error == "Unhandled"
            assert result.error_type == "Runtime.ImportModuleError"
            assert json.loads(result.payload) == {
                "errorMessage": "No module named 'not_a_module_here'",
                "errorType": "ModuleNotFoundError",
            }
            messages = h.sink.messages()
            init_reports = [m for m in messages if m.startswith("INIT_REPORT")]
            assert len(init_reports) == 1
            assert re.fullmatch(
                r"INIT_REPORT Init Duration: \d+\.\d\d ms\tPhase: init\tStatus: error"
                r"\tError Type: Runtime.ImportModuleError",
                init_reports[0],
            )
            assert messages[-2:] == [
                "END RequestId: rid-init",
                report_lines(h)[-1],
            ]
            assert result.init_duration_ms is not None
            # The next invocation tries INIT again from scratch.
            await h.invoke(spec)
            assert sum(m.startswith("INIT_START") for m in h.sink.messages()) == 2
            assert not h.manager.environments() or all(
                e.state == "dead" for e in h.manager.environments()
            )

    scenario()


def test_exit_during_init(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness() as h:
            spec = make_spec(code("import sys\nprint('leaving')\nsys.exit(2)\n"))
            result = await h.invoke(spec, request_id="rid-x")
            assert result.error_type == "Runtime.ExitError"
            assert json.loads(result.payload)["errorMessage"] == (
                "RequestId: rid-x Error: Runtime exited with error: exit status 2"
            )
            messages = h.sink.messages()
            assert "leaving" in messages
            assert any(
                m.startswith("INIT_REPORT") and m.endswith("Error Type: Runtime.ExitError")
                for m in messages
            )

    scenario()


def test_init_timeout(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness(init_timeout=0.5) as h:
            spec = make_spec(code("import time\ntime.sleep(30)\n"))
            result = await h.invoke(spec, request_id="rid-slow")
            assert result.error_type == "Sandbox.Timedout"
            assert json.loads(result.payload)["errorType"] == "Sandbox.Timedout"
            init_report = next(m for m in h.sink.messages() if m.startswith("INIT_REPORT"))
            assert init_report.endswith("\tPhase: init\tStatus: timeout")
            assert report_lines(h)[-1].endswith("\tStatus: timeout\t")

    scenario()


def test_missing_executable_is_reported_not_raised(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness(command=lambda spec: ["/nonexistent/runtime"]) as h:
            result = await h.invoke(make_spec(code(PID_THEN)))
            assert result.function_error == "Unhandled"
            assert result.error_type == "Runtime.InvalidEntrypoint"

    scenario()
