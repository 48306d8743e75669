"""Platform lines of environments restored from a SnapStart snapshot."""

from __future__ import annotations

import json

from lambdalite.invocation.platform_log import PlatformLines, Report, RestoreLines


def _report(**extra: object) -> Report:
    base = {
        "request_id": "r-1",
        "duration_ms": 1.234,
        "billed_ms": 20,  # as the environment computes it, restore included
        "memory_mb": 128,
        "max_memory_mb": 30,
        "init_ms": 17.5,
    }
    base.update(extra)
    return Report(**base)  # type: ignore[arg-type]


def test_text_lines() -> None:
    lines = RestoreLines("Text", "python3.12", "us-east-1", "3")
    assert lines.init_start(0.0, "f").startswith("RESTORE_START Runtime Version: python:3.12.v1\t")
    assert lines.init_report(0.0, 17.5, "success") == "RESTORE_REPORT Restore Duration: 17.50 ms"
    failed = lines.init_report(0.0, 17.5, "error", "Runtime.AfterRestoreError")
    assert failed == (
        "RESTORE_REPORT Restore Duration: 17.50 ms\tStatus: error\t"
        "Error Type: Runtime.AfterRestoreError"
    )
    report = lines.report(0.0, _report())
    assert report == (
        "REPORT RequestId: r-1\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\t"
        "Max Memory Used: 30 MB\tRestore Duration: 17.50 ms\tBilled Restore Duration: 18 ms\t"
    )
    warm = lines.report(0.0, _report(init_ms=None, billed_ms=2))
    assert "Restore" not in warm and "Init Duration" not in warm


def test_json_lines() -> None:
    lines = RestoreLines("JSON", "python3.12", "us-east-1", "3")
    start = json.loads(lines.init_start(0.0, "f"))
    assert start["type"] == "platform.restoreStart"
    assert start["record"]["functionVersion"] == "3"
    done = json.loads(lines.init_report(0.0, 17.5, "success"))
    assert done["type"] == "platform.restoreReport"
    assert done["record"]["metrics"] == {"durationMs": 17.5}
    metrics = json.loads(lines.report(0.0, _report()))["record"]["metrics"]
    assert metrics["restoreDurationMs"] == 17.5
    assert metrics["billedRestoreDurationMs"] == 18
    assert "initDurationMs" not in metrics


def test_cold_start_lines_are_unchanged() -> None:
    report = PlatformLines("Text", "python3.12", "us-east-1", "3").report(0.0, _report())
    assert "\tInit Duration: 17.50 ms\t" in report
    assert "Restore" not in report
