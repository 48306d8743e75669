"""The platform's own log lines (INIT_START, START, END, REPORT, ...) and the log tail.

Existing log parsers and query tooling key on the exact shape of these lines, so they follow
the platform byte for byte: single spaces in START/END, tab-separated REPORT fields each
followed by a tab, durations with two decimals, and with ``LogFormat=JSON`` the equivalent
``platform.*`` JSON records instead of text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

TAIL_BYTES = 4096


def iso_time(epoch_s: float) -> str:
    """``2024-04-23T10:15:30.123Z``."""
    moment = datetime.fromtimestamp(epoch_s, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def runtime_version(runtime: str, region: str) -> tuple[str, str]:
    """(``python:3.11.v1``, ``arn:aws:lambda:<region>::runtime:<64 hex>``) for a runtime id."""
    match = re.fullmatch(r"([a-z]+)\.?(.*?)(?:\.x)?", runtime)
    family, release = (match.group(1), match.group(2)) if match else (runtime, "")
    version = f"{family}:{release}.v1" if release else f"{family}:v1"
    digest = hashlib.sha256(f"lambdalite/{version}".encode()).hexdigest()
    return version, f"arn:aws:lambda:{region}::runtime:{digest}"


def billed_ms(duration_ms: float, init_ms: float | None = None) -> int:
    """Duration rounded up to the millisecond, init included (cold starts are billed)."""
    if not init_ms:  # a float rounded to 2 places stays as it is when rounded again
        return max(1, math.ceil(round(duration_ms, 2)))
    total = round(duration_ms, 2) + round(init_ms, 2)
    return max(1, math.ceil(round(total, 2)))


@dataclass(frozen=True)
class Report:
    request_id: str
    duration_ms: float
    billed_ms: int
    memory_mb: int
    max_memory_mb: int
    init_ms: float | None = None
    status: str = "success"  # success | error | timeout
    error_type: str | None = None
    restore_ms: float | None = None  # SnapStart: restored instead of initialized

    def __init__(
        self,
        request_id: str,
        duration_ms: float,
        billed_ms: int,
        memory_mb: int,
        max_memory_mb: int,
        init_ms: float | None = None,
        status: str = "success",
        error_type: str | None = None,
        restore_ms: float | None = None,
    ) -> None:
        # One per invocation: the fields go straight into the instance's dict, which is what
        # the generated __init__ of a frozen class does one object.__setattr__ at a time.
        fields = self.__dict__
        fields["request_id"] = request_id
        fields["duration_ms"] = duration_ms
        fields["billed_ms"] = billed_ms
        fields["memory_mb"] = memory_mb
        fields["max_memory_mb"] = max_memory_mb
        fields["init_ms"] = init_ms
        fields["status"] = status
        fields["error_type"] = error_type
        fields["restore_ms"] = restore_ms


class PlatformLines:
    """Formats the platform lines of one function version in its log format."""

    def __init__(self, log_format: str, runtime: str, region: str, version: str) -> None:
        self.json = log_format.upper() == "JSON"
        self.version = version
        self.runtime_version, self.runtime_arn = runtime_version(runtime, region)

    def _record(self, kind: str, now: float, record: dict[str, Any]) -> str:
        return json.dumps({"time": iso_time(now), "type": kind, "record": record})

    def init_start(self, now: float, function_name: str, init_type: str = "on-demand") -> str:
        if self.json:
            return self._record(
                "platform.initStart",
                now,
                {
                    "initializationType": init_type,
                    "phase": "init",
                    "runtimeVersion": self.runtime_version,
                    "runtimeVersionArn": self.runtime_arn,
                    "functionName": function_name,
                    "functionVersion": self.version,
                },
            )
        return (
            f"INIT_START Runtime Version: {self.runtime_version}\t"
            f"Runtime Version ARN: {self.runtime_arn}"
        )

    def init_report(
        self,
        now: float,
        init_ms: float,
        status: str,
        error_type: str | None = None,
        init_type: str = "on-demand",
    ) -> str:
        if self.json:
            record: dict[str, Any] = {
                "initializationType": init_type,
                "phase": "init",
                "status": status,
                "metrics": {"durationMs": round(init_ms, 3)},
            }
            if error_type:
                record["errorType"] = error_type
            return self._record("platform.initReport", now, record)
        line = f"INIT_REPORT Init Duration: {init_ms:.2f} ms\tPhase: init\tStatus: {status}"
        return line + (f"\tError Type: {error_type}" if error_type else "")

    def start(self, now: float, request_id: str) -> str:
        if self.json:
            record = {"requestId": request_id, "version": self.version}
            return self._record("platform.start", now, record)
        return f"START RequestId: {request_id} Version: {self.version}"

    def end(self, now: float, report: Report) -> str:
        if self.json:
            record: dict[str, Any] = {"requestId": report.request_id, "status": report.status}
            if report.error_type:
                record["errorType"] = report.error_type
            return self._record("platform.runtimeDone", now, record)
        return f"END RequestId: {report.request_id}"

    def report(self, now: float, report: Report) -> str:
        if self.json:
            metrics: dict[str, Any] = {
                "durationMs": round(report.duration_ms, 2),
                "billedDurationMs": report.billed_ms,
                "memorySizeMB": report.memory_mb,
                "maxMemoryUsedMB": report.max_memory_mb,
            }
            if report.init_ms is not None:
                metrics["initDurationMs"] = round(report.init_ms, 2)
            if report.restore_ms is not None:
                metrics["restoreDurationMs"] = round(report.restore_ms, 2)
                metrics["billedRestoreDurationMs"] = billed_ms(report.restore_ms)
            record: dict[str, Any] = {
                "requestId": report.request_id,
                "metrics": metrics,
                "status": report.status,
            }
            if report.error_type:
                record["errorType"] = report.error_type
            return self._record("platform.report", now, record)
        if report.init_ms is None and report.restore_ms is None and report.status == "success":
            return (
                f"REPORT RequestId: {report.request_id}\tDuration: {report.duration_ms:.2f} ms\t"
                f"Billed Duration: {report.billed_ms} ms\tMemory Size: {report.memory_mb} MB\t"
                f"Max Memory Used: {report.max_memory_mb} MB\t"
            )
        fields = [
            f"REPORT RequestId: {report.request_id}",
            f"Duration: {report.duration_ms:.2f} ms",
            f"Billed Duration: {report.billed_ms} ms",
            f"Memory Size: {report.memory_mb} MB",
            f"Max Memory Used: {report.max_memory_mb} MB",
        ]
        if report.init_ms is not None:
            fields.append(f"Init Duration: {report.init_ms:.2f} ms")
        if report.restore_ms is not None:
            fields.append(f"Restore Duration: {report.restore_ms:.2f} ms")
            fields.append(f"Billed Restore Duration: {billed_ms(report.restore_ms)} ms")
        if report.status == "timeout":
            fields.append("Status: timeout")
        elif report.status == "error" and report.error_type:
            fields += ["Status: error", f"Error Type: {report.error_type}"]
        return "\t".join(fields) + "\t"


class RestoreLines(PlatformLines):
    """The lines of an environment restored from a SnapStart snapshot.

    Its start is a restore, not an INIT: ``RESTORE_START`` and ``RESTORE_REPORT`` take the
    place of ``INIT_START`` and ``INIT_REPORT``, and the REPORT of its first invocation shows
    ``Restore Duration`` and ``Billed Restore Duration`` where a cold start shows ``Init
    Duration`` (the restore is billed on its own, not inside ``Billed Duration``). The
    environment measures the restore exactly as it measures INIT, so the figure it hands over
    as the init time is moved to where it belongs here.
    """

    def init_start(self, now: float, function_name: str, init_type: str = "snap-start") -> str:
        if self.json:
            record = {
                "runtimeVersion": self.runtime_version,
                "runtimeVersionArn": self.runtime_arn,
                "functionName": function_name,
                "functionVersion": self.version,
            }
            return self._record("platform.restoreStart", now, record)
        return (
            f"RESTORE_START Runtime Version: {self.runtime_version}\t"
            f"Runtime Version ARN: {self.runtime_arn}"
        )

    def init_report(
        self,
        now: float,
        init_ms: float,
        status: str,
        error_type: str | None = None,
        init_type: str = "snap-start",
    ) -> str:
        if self.json:
            record: dict[str, Any] = {
                "status": status,
                "metrics": {"durationMs": round(init_ms, 3)},
            }
            if error_type:
                record["errorType"] = error_type
            return self._record("platform.restoreReport", now, record)
        line = f"RESTORE_REPORT Restore Duration: {init_ms:.2f} ms"
        if status != "success":
            line += f"\tStatus: {status}" + (f"\tError Type: {error_type}" if error_type else "")
        return line

    def report(self, now: float, report: Report) -> str:
        if report.init_ms is not None and report.restore_ms is None:
            report = replace(
                report,
                init_ms=None,
                restore_ms=report.init_ms,
                billed_ms=billed_ms(report.duration_ms),
            )
        return super().report(now, report)


def timeout_line(now: float, request_id: str, timeout_s: float) -> str:
    return f"{iso_time(now)} {request_id} Task timed out after {timeout_s:.2f} seconds"


class LogTail:
    """Keeps just enough of an invocation's log lines to produce its last 4 KB."""

    def __init__(self) -> None:
        self._lines: deque[bytes] = deque()
        self._size = 0

    def add(self, line: str) -> None:
        data = line.encode("utf-8", "replace") + b"\n"
        self._lines.append(data)
        self._size += len(data)
        while self._lines and self._size - len(self._lines[0]) >= TAIL_BYTES:
            self._size -= len(self._lines.popleft())

    def encoded(self) -> str:
        """Base64 of the last 4 KB, as in ``X-Amz-Log-Result``."""
        return base64.b64encode(b"".join(self._lines)[-TAIL_BYTES:]).decode()
