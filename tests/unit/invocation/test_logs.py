"""Log lines: platform line formats, order, line splitting and the 4 KB tail."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path

from .conftest import Harness, make_spec, run_async

CHATTY = """
import sys
print("init line")
def handler(event, context):
    for i in range(event.get("lines", 3)):
        print("line", i)
    sys.stderr.write("to stderr\\n")
    sys.stdout.write("carriage\\rinside\\n")
    sys.stdout.write("no newline at the end")
    return "done"
"""

START = re.compile(r"START RequestId: (?P<id>[\w-]+) Version: \$LATEST")
END = re.compile(r"END RequestId: (?P<id>[\w-]+)")
REPORT = re.compile(
    r"REPORT RequestId: (?P<id>[\w-]+)\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: 128 MB\tMax Memory Used: \d+ MB\t(?P<init>Init Duration: \d+\.\d\d ms\t)?"
)
INIT_START = re.compile(
    r"INIT_START Runtime Version: python:3\.11\.v\d+\t"
    r"Runtime Version ARN: arn:aws:lambda:us-east-1::runtime:[0-9a-f]{64}"
)


def test_lines_and_their_order(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness() as h:
            spec = make_spec(code(CHATTY))
            await h.invoke(spec, b'{"lines": 500}', request_id="r-1")
            await h.invoke(spec, b'{"lines": 1}', request_id="r-2")
            events = h.sink.events
            assert {(group, stream) for group, stream, _, _ in events} == {
                ("/aws/lambda/fn", events[0][1])
            }
            stamps = [ts for _, _, ts, _ in events]
            assert stamps == sorted(stamps)
            messages = h.sink.messages()
            assert INIT_START.fullmatch(messages[0])
            assert messages[1] == "init line"
            assert START.fullmatch(messages[2]).group("id") == "r-1"
            first_end = messages.index("END RequestId: r-1")
            body = messages[3:first_end]
            # Every line printed before the handler returned is logged before END, in order.
            assert body[:500] == [f"line {i}" for i in range(500)]
            assert body[500:] == ["to stderr", "carriage\rinside", "no newline at the end"]
            cold = REPORT.fullmatch(messages[first_end + 1])
            assert cold and cold.group("id") == "r-1" and cold.group("init")
            assert messages[first_end + 2] == "START RequestId: r-2 Version: $LATEST"
            warm = REPORT.fullmatch(messages[-1])
            assert warm and warm.group("id") == "r-2" and warm.group("init") is None
            assert messages[-2] == "END RequestId: r-2"
            assert messages[-6:-2] == [
                "line 0",
                "to stderr",
                "carriage\rinside",
                "no newline at the end",
            ]

    scenario()


def test_billed_duration_includes_init_on_cold_start(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness() as h:
            result = await h.invoke(make_spec(code(CHATTY)))
            assert result.init_duration_ms is not None
            assert result.billed_ms >= int(result.duration_ms + result.init_duration_ms)
            report = h.sink.messages()[-1]
            assert f"Billed Duration: {result.billed_ms} ms" in report
            assert f"Init Duration: {result.init_duration_ms:.2f} ms" in report

    scenario()


def test_log_tail(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness() as h:
            spec = make_spec(code(CHATTY))
            short = await h.invoke(spec, b'{"lines": 2}', tail_logs=True, request_id="t-1")
            text = base64.b64decode(short.log_tail or "").decode()
            lines = text.split("\n")
            assert INIT_START.fullmatch(lines[0])  # cold start: INIT lines included
            assert lines[1:4] == ["init line", "START RequestId: t-1 Version: $LATEST", "line 0"]
            assert REPORT.fullmatch(lines[-2]) and lines[-1] == ""

            long = await h.invoke(spec, b'{"lines": 2000}', tail_logs=True, request_id="t-2")
            raw = base64.b64decode(long.log_tail or "")
            assert len(raw) == 4096
            assert raw.decode().endswith(h.sink.messages()[-1] + "\n")
            assert "INIT_START" not in raw.decode()

            none = await h.invoke(spec)
            assert none.log_tail is None

    scenario()


def test_json_log_format(code: Callable[[str], Path]) -> None:
    @run_async
    async def scenario() -> None:
        async with Harness() as h:
            spec = make_spec(code(CHATTY), log_format="JSON")
            await h.invoke(spec, request_id="j-1")
            records = [json.loads(m) for m in h.sink.messages() if m.startswith('{"time"')]
            kinds = [r["type"] for r in records]
            assert kinds == [
                "platform.initStart",
                "platform.start",
                "platform.runtimeDone",
                "platform.report",
            ]
            report = records[-1]["record"]
            assert report["requestId"] == "j-1" and report["status"] == "success"
            assert set(report["metrics"]) == {
                "durationMs",
                "billedDurationMs",
                "memorySizeMB",
                "maxMemoryUsedMB",
                "initDurationMs",
            }

    scenario()
