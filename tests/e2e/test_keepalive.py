"""Keep-alive policies and the idle memory budget through a real server and boto3.

Whether an invocation found a warm environment is read from its REPORT line (an ``Init
Duration`` means it had to start one). Waits poll with generous deadlines; nothing asserts
how fast the machine is.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ServerProcess, create


def invoke(lam: Any, name: str, event: dict[str, Any] | None = None) -> bool:
    """Invoke ``name``; True when it ran in an environment that had to start (cold)."""
    response = lam.invoke(
        FunctionName=name, Payload=json.dumps(event or {}).encode(), LogType="Tail"
    )
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    tail = base64.b64decode(response["LogResult"]).decode()
    return "Init Duration" in tail


def together(server: ServerProcess, name: str, count: int) -> list[bool]:
    """``count`` overlapping invocations (each sleeps a second); which of them were cold."""
    clients = [server.client() for _ in range(count)]
    event = {"action": "sleep", "seconds": 1}
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda lam: invoke(lam, name, event), clients))


def make(lam: Any, name: str, memory_mb: int = 128) -> None:
    create(lam, name, MemorySize=memory_mb)
    lam.get_waiter("function_active_v2").wait(FunctionName=name)


@pytest.fixture
def budget_server(tmp_path: Path) -> Iterator[ServerProcess]:
    # Room for two idle 128 MB environments, not three.
    server = ServerProcess(tmp_path / "data", keep_alive=300, idle_memory_mb=300).start()
    yield server
    assert server.stop() == 0, server.output()


def test_budget_keeps_one_environment_per_function(budget_server: ServerProcess) -> None:
    lam = budget_server.client()
    make(lam, "pair")
    make(lam, "solo")
    assert together(budget_server, "pair", 2) == [True, True]  # two environments of "pair"
    assert invoke(lam, "solo") is True  # a third: over the budget, one idle one is stopped
    # The one stopped was the second environment of "pair": one of each is still warm.
    assert invoke(lam, "solo") is False
    assert sorted(together(budget_server, "pair", 2)) == [False, True]


def test_budget_stops_the_largest_environment_first(budget_server: ServerProcess) -> None:
    lam = budget_server.client()
    make(lam, "small", 128)
    make(lam, "big", 256)
    assert invoke(lam, "small") is True
    assert invoke(lam, "big") is True  # 384 MB idle: the 256 MB one goes although newest
    assert invoke(lam, "small") is False
    assert invoke(lam, "big") is True


def log_messages(logs: Any, name: str) -> list[str]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"logGroupName": f"/aws/lambda/{name}"}
    while True:
        page = logs.filter_log_events(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    events.sort(key=lambda e: (e["timestamp"], e["ingestionTime"]))
    return [e["message"].rstrip("\n") for e in events]


def test_hybrid_policy_prewarms_before_the_next_invocation(tmp_path: Path) -> None:
    """Idle times of 2 and 6 seconds (one-second bins): after three of them the policy knows
    the function stays idle for at least 2 s, so its environment is stopped and started again
    (INIT logged without an invocation) 1.8 s into the idle period, kept until 7.7 s."""
    server = ServerProcess(
        tmp_path / "data", keep_alive_policy="hybrid-histogram", keep_alive_bin=1.0, keep_alive=1
    ).start()
    try:
        lam, logs = server.client(), server.client("logs")
        make(lam, "periodic")
        invoke(lam, "periodic")
        for gap in (2.0, 6.0, 2.0):
            time.sleep(gap)
            invoke(lam, "periodic")
        # Everything logged after the fourth invocation's REPORT line (logs are written in
        # batches): an INIT on its own, no invocation.
        deadline = time.monotonic() + 30
        while True:
            messages = log_messages(logs, "periodic")
            reports = [i for i, m in enumerate(messages) if m.startswith("REPORT")]
            after = messages[reports[3] + 1 :] if len(reports) >= 4 else []
            if any(m.startswith("INIT_START") for m in after) and after[-1].startswith(
                "INIT_REPORT"
            ):
                break
            assert time.monotonic() < deadline, messages
            time.sleep(0.1)
        assert not any(m.startswith("START RequestId") for m in after)
        assert invoke(lam, "periodic") is False  # the pre-warmed environment serves it
    finally:
        assert server.stop() == 0, server.output()
