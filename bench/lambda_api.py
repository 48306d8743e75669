"""The Lambda API as the suite uses it, against any server that speaks it.

Control-plane calls (create, publish, logs) go through boto3, off every timed path; Invoke
goes through the suite's small HTTP client as a raw ``POST .../invocations`` request.
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any
from urllib.parse import quote

from bench.httpclient import Response, build_request

ROLE = "arn:aws:iam::000000000000:role/bench"
_INIT = re.compile(r"\tInit Duration: ([0-9.]+) ms")  # of REPORT lines, not INIT_REPORT
# The REPORT field only: not RESTORE_REPORT's figure, nor "Billed Restore Duration".
_RESTORE = re.compile(r"\tRestore Duration: ([0-9.]+) ms")


def invoke_path(name: str, qualifier: str | None = None) -> str:
    path = f"/2015-03-31/functions/{quote(name, safe='')}/invocations"
    return f"{path}?Qualifier={quote(qualifier, safe='')}" if qualifier else path


def invoke_request(
    port: int, name: str, body: bytes, qualifier: str | None = None, tail: bool = False
) -> bytes:
    headers = {"X-Amz-Log-Type": "Tail"} if tail else None
    return build_request("POST", invoke_path(name, qualifier), f"127.0.0.1:{port}", body, headers)


def succeeded(response: Response) -> bool:
    return response.status == 200 and "x-amz-function-error" not in response.headers


def describe_failure(response: Response) -> str:
    error = response.headers.get("x-amz-function-error", "")
    return f"HTTP {response.status} {error} {response.body[:300]!r}".strip()


def tail_log(response: Response) -> str:
    raw = response.headers.get("x-amz-log-result")
    return base64.b64decode(raw).decode(errors="replace") if raw else ""


def init_kind(log: str) -> str | None:
    """``init`` or ``restore`` when a REPORT line says the invocation started an environment."""
    if _RESTORE.search(log):
        return "restore"
    if _INIT.search(log):
        return "init"
    return None


def create_function(
    lam: Any,
    name: str,
    package: bytes,
    runtime: str,
    *,
    memory_mb: int = 128,
    timeout_s: int = 30,
    snapstart: bool = False,
    environment: dict[str, str] | None = None,
) -> None:
    params: dict[str, Any] = {
        "FunctionName": name,
        "Runtime": runtime,
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": package},
        "MemorySize": memory_mb,
        "Timeout": timeout_s,
    }
    if environment:
        params["Environment"] = {"Variables": environment}
    if snapstart:
        params["SnapStart"] = {"ApplyOn": "PublishedVersions"}
    lam.create_function(**params)
    wait_until_active(lam, name)


def wait_until_active(lam: Any, name: str, qualifier: str | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    kwargs: dict[str, Any] = {"FunctionName": name}
    if qualifier:
        kwargs["Qualifier"] = qualifier
    while True:
        config: dict[str, Any] = lam.get_function_configuration(**kwargs)
        state = config.get("State", "Active")
        if state == "Active" or time.monotonic() > deadline:
            return config
        if state == "Failed":
            raise RuntimeError(f"{name} failed: {config.get('StateReason')}")
        time.sleep(0.05)


def publish(lam: Any, name: str) -> tuple[str, dict[str, Any]]:
    """Publish a version and wait until it can be invoked; returns (version, configuration)."""
    version = str(lam.publish_version(FunctionName=name)["Version"])
    return version, wait_until_active(lam, name, version)


def report_durations(logs: Any, names: list[str], wait_s: float = 5.0) -> dict[str, list[float]]:
    """Init and Restore Durations from the REPORT lines of each function's log group."""
    found: dict[str, list[float]] = {"init": [], "restore": []}
    pending = list(names)
    deadline = time.monotonic() + wait_s
    while pending and time.monotonic() < deadline:
        still = []
        for name in pending:
            text = _log_text(logs, name)
            if "REPORT" not in text:
                still.append(name)
                continue
            found["init"] += [float(v) for v in _INIT.findall(text)]
            found["restore"] += [float(v) for v in _RESTORE.findall(text)]
        pending = still
        if pending:
            time.sleep(0.2)
    return found


def _log_text(logs: Any, name: str) -> str:
    try:
        events = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
    except Exception:  # a server without the logs API, or no group yet
        return ""
    return "\n".join(str(event.get("message", "")) for event in events)
