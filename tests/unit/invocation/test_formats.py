"""Pure formatting helpers: runtime versions, billing, timestamps, argv and the log tail."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from lambdalite.invocation.platform_log import (
    LogTail,
    PlatformLines,
    Report,
    billed_ms,
    iso_time,
    runtime_version,
)
from lambdalite.invocation.runtime_env import runtime_argv

from .conftest import make_spec


def test_runtime_version_names() -> None:
    version, arn = runtime_version("python3.11", "eu-west-1")
    assert version == "python:3.11.v1"
    assert re.fullmatch(r"arn:aws:lambda:eu-west-1::runtime:[0-9a-f]{64}", arn)
    assert runtime_version("nodejs20.x", "us-east-1")[0] == "nodejs:20.v1"
    assert runtime_version("python3.11", "eu-west-1") == (version, arn)  # stable


def test_billing_rounds_up_and_includes_init() -> None:
    assert billed_ms(2.06) == 3
    assert billed_ms(0.01) == 1
    assert billed_ms(3000.0) == 3000
    assert billed_ms(900000.0, 544.9) == 900545


def test_iso_time() -> None:
    assert iso_time(0.5) == "1970-01-01T00:00:00.500Z"


def test_report_line_fields() -> None:
    lines = PlatformLines("Text", "python3.11", "us-east-1", "3")
    assert lines.start(0, "r") == "START RequestId: r Version: 3"
    report = Report("r", 12.345, 13, 256, 40, 100.5, "error", "Runtime.ExitError")
    assert lines.report(0, report) == (
        "REPORT RequestId: r\tDuration: 12.35 ms\tBilled Duration: 13 ms\tMemory Size: 256 MB\t"
        "Max Memory Used: 40 MB\tInit Duration: 100.50 ms\tStatus: error\t"
        "Error Type: Runtime.ExitError\t"
    )
    assert lines.init_report(0, 150.789, "timeout") == (
        "INIT_REPORT Init Duration: 150.79 ms\tPhase: init\tStatus: timeout"
    )


def test_log_tail_keeps_the_last_4_kb() -> None:
    tail = LogTail()
    for i in range(1000):
        tail.add(f"line {i:04d} ü")
    raw = base64.b64decode(tail.encoded())
    assert len(raw) == 4096
    assert raw.endswith("line 0999 ü\n".encode())


def test_exec_wrapper_under_var_task_maps_to_the_code_dir(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, environment={"AWS_LAMBDA_EXEC_WRAPPER": "/var/task/bin/wrap"})
    assert runtime_argv(spec, ["python", "boot.py"]) == [
        str(tmp_path / "bin/wrap"),
        "python",
        "boot.py",
    ]
    plain = make_spec(tmp_path, environment={"AWS_LAMBDA_EXEC_WRAPPER": "/opt/wrap"})
    assert runtime_argv(plain, ["python"]) == ["/opt/wrap", "python"]
    assert runtime_argv(make_spec(tmp_path), ["python"]) == ["python"]
