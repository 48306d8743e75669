"""Provisioned concurrency with real pre-initialized environments, and the init gate.

The server keeps idle on-demand environments for two seconds only, so a provisioned
environment still answering after that shows it is exempt from keep-alive. The handler reports
``AWS_LAMBDA_INITIALIZATION_TYPE``, which tells a provisioned environment from an on-demand
one, and ``calls``, which tells a reused environment from a new one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.asynchelp import log_lines, stats, wait_for
from tests.e2e.harness import ServerProcess, create

PROVISIONED = "provisioned-concurrency"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("provisioned"), keep_alive=2, concurrent_inits=2
    ).start()
    yield proc
    assert proc.stop() == 0, proc.output()


@pytest.fixture(scope="module")
def lam(server: ServerProcess) -> Any:
    return server.client()


def environments(server: ServerProcess, function: str) -> int:
    """Provisioned environments of ``function`` initialized and alive, from the live figures."""
    figures = stats(server)["functions"].get(function) or {}
    return int(figures.get("provisionedEnvironments", 0))


def provision(lam: Any, name: str, qualifier: str, count: int) -> dict[str, Any]:
    put: dict[str, Any] = lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier=qualifier, ProvisionedConcurrentExecutions=count
    )
    return put


def config(lam: Any, name: str, qualifier: str) -> dict[str, Any]:
    got: dict[str, Any] = lam.get_provisioned_concurrency_config(
        FunctionName=name, Qualifier=qualifier
    )
    return got


def ready(lam: Any, name: str, qualifier: str) -> dict[str, Any]:
    got = wait_for(lambda: (c := config(lam, name, qualifier))["Status"] != "IN_PROGRESS" and c)
    assert got["Status"] == "READY", got
    return dict(got)


def invoke(lam: Any, target: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    response = lam.invoke(FunctionName=target, Payload=json.dumps(payload or {}).encode())
    body = json.loads(response["Payload"].read())
    return {"error": response.get("FunctionError"), "body": body}


def report(server: ServerProcess, name: str, request_id: str) -> str:
    lines = wait_for(
        lambda: [
            e["message"]
            for e in log_lines(server, name)
            if e["message"].startswith(f"REPORT RequestId: {request_id}")
        ]
    )
    return str(lines[0])


def published(lam: Any, name: str, fixture: str = "basic") -> None:
    create(lam, name, fixture)
    lam.publish_version(FunctionName=name)


def test_put_initializes_environments_ahead(server: ServerProcess, lam: Any, name: str) -> None:
    published(lam, name)
    put = provision(lam, name, "1", 2)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert put["Status"] == "IN_PROGRESS"
    assert put["AllocatedProvisionedConcurrentExecutions"] == 0
    got = ready(lam, name, "1")
    assert got["AllocatedProvisionedConcurrentExecutions"] == 2
    assert got["AvailableProvisionedConcurrentExecutions"] == 2
    # Both environments exist and ran INIT before any invocation.
    assert environments(server, name) == 2
    messages = [e["message"] for e in log_lines(server, name)]
    assert sum(m.startswith("INIT_START") for m in messages) == 2
    inits = [m for m in messages if m.startswith("INIT_REPORT")]
    assert len(inits) == 2 and all("Status: success" in m for m in inits)
    assert not any(m.startswith("START") for m in messages)
    # The first invocation runs in one of them: no INIT, no Init Duration.
    out = invoke(lam, f"{name}:1")
    assert out["error"] is None
    assert out["body"]["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == PROVISIONED
    assert out["body"]["calls"] == 1
    line = report(server, name, out["body"]["request_id"])
    assert "Init Duration" not in line
    streams = {e["logStreamName"] for e in log_lines(server, name) if "INIT_START" in e["message"]}
    assert out["body"]["log_stream"] in streams
    # Invoking the function unqualified ($LATEST) is on-demand.
    latest = invoke(lam, name)
    assert latest["body"]["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert "Init Duration" in report(server, name, latest["body"]["request_id"])


def test_alias_overflow_and_keep_alive(server: ServerProcess, lam: Any, name: str) -> None:
    published(lam, name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    provision(lam, name, "live", 1)
    ready(lam, name, "live")
    sleep = {"action": "sleep", "seconds": 1.5}
    with ThreadPoolExecutor(3) as pool:
        outs = list(pool.map(lambda _: invoke(lam, f"{name}:live", sleep), range(3)))
    kinds = sorted(o["body"]["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] for o in outs)
    assert kinds == ["on-demand", "on-demand", PROVISIONED]
    for out in outs:
        line = report(server, name, out["body"]["request_id"])
        on_demand = out["body"]["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
        assert ("Init Duration" in line) is on_demand
    # Past keep-alive the on-demand environments are gone, the provisioned one is not.
    time.sleep(4)
    assert environments(server, name) == 1
    again = invoke(lam, f"{name}:live")
    assert again["body"]["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == PROVISIONED
    assert again["body"]["calls"] == 2
    # Invoking version 1 directly does not use the alias's provisioned environment.
    direct = invoke(lam, f"{name}:1")
    assert direct["body"]["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"


def test_dead_environment_is_replaced(server: ServerProcess, lam: Any, name: str) -> None:
    published(lam, name)
    provision(lam, name, "1", 1)
    ready(lam, name, "1")
    crashed = invoke(lam, f"{name}:1", {"action": "exit", "code": 3})
    assert crashed["error"] == "Unhandled"
    assert crashed["body"]["errorType"] == "Runtime.ExitError"
    wait_for(lambda: environments(server, name) == 1)
    wait_for(lambda: config(lam, name, "1")["AllocatedProvisionedConcurrentExecutions"] == 1)
    assert config(lam, name, "1")["Status"] == "READY"
    out = invoke(lam, f"{name}:1")
    assert out["body"]["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == PROVISIONED
    assert out["body"]["calls"] == 1  # a fresh environment
    assert "Init Duration" not in report(server, name, out["body"]["request_id"])


def test_delete_stops_environments(server: ServerProcess, lam: Any, name: str) -> None:
    published(lam, name)
    provision(lam, name, "1", 2)
    ready(lam, name, "1")
    assert environments(server, name) == 2
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    wait_for(lambda: environments(server, name) == 0)
    provision(lam, name, "1", 1)
    ready(lam, name, "1")
    assert environments(server, name) == 1
    # Deleting the version stops them, and so does deleting the function.
    lam.delete_function(FunctionName=name, Qualifier="1")
    wait_for(lambda: environments(server, name) == 0)
    lam.update_function_configuration(FunctionName=name, Timeout=5)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    lam.publish_version(FunctionName=name)
    provision(lam, name, "2", 1)
    ready(lam, name, "2")
    assert environments(server, name) == 1
    lam.delete_function(FunctionName=name)
    wait_for(lambda: environments(server, name) == 0)


def test_failing_init_reports_failed(server: ServerProcess, lam: Any, name: str) -> None:
    create(lam, name, "basic", Handler="app.missing")
    lam.publish_version(FunctionName=name)
    provision(lam, name, "1", 1)
    got = wait_for(lambda: (c := config(lam, name, "1"))["Status"] != "IN_PROGRESS" and c)
    assert got["Status"] == "FAILED"
    assert "Runtime.HandlerNotFound" in got["StatusReason"]
    assert got["AllocatedProvisionedConcurrentExecutions"] == 0


def test_burst_through_a_small_init_gate(server: ServerProcess, name: str) -> None:
    """Far more simultaneous cold starts than init slots (two): all of them succeed."""
    client = server.client(max_pool_connections=32)
    create(client, name, Timeout=30)
    burst = 24
    sleep = {"action": "sleep", "seconds": 0.5}
    with ThreadPoolExecutor(burst) as pool:
        outs = list(pool.map(lambda _: invoke(client, name, sleep), range(burst)))
    assert [o["error"] for o in outs] == [None] * burst


def test_restart_recreates_environments(tmp_path: Path, name: str) -> None:
    first = ServerProcess(tmp_path / "data", keep_alive=2).start()
    try:
        lam = first.client()
        published(lam, name)
        provision(lam, name, "1", 2)
        ready(lam, name, "1")
    finally:
        assert first.stop() == 0, first.output()
    second = ServerProcess(tmp_path / "data", keep_alive=2).start()
    try:
        lam = second.client()
        got = ready(lam, name, "1")
        assert got["AllocatedProvisionedConcurrentExecutions"] == 2
        assert environments(second, name) == 2
        out = invoke(lam, f"{name}:1")
        assert out["body"]["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == PROVISIONED
        assert "Init Duration" not in report(second, name, out["body"]["request_id"])
    finally:
        assert second.stop() == 0, second.output()


def test_alias_moved_to_another_version(server: ServerProcess, lam: Any, name: str) -> None:
    published(lam, name)
    lam.update_function_configuration(
        FunctionName=name, Environment={"Variables": {"MY_RELEASE": "two"}}
    )
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    provision(lam, name, "live", 1)
    ready(lam, name, "live")
    assert invoke(lam, f"{name}:live")["body"]["function_version"] == "1"
    lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2")

    def moved() -> bool:
        body = invoke(lam, f"{name}:live")["body"]
        kind = body["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"]
        return bool(body["function_version"] == "2" and kind == PROVISIONED)

    wait_for(moved)
    assert ready(lam, name, "live")["AllocatedProvisionedConcurrentExecutions"] == 1
    wait_for(lambda: environments(server, name) == 1)


def test_put_again_retries_a_failed_configuration(
    server: ServerProcess, lam: Any, name: str
) -> None:
    create(lam, name, "basic", Handler="app.missing")
    lam.publish_version(FunctionName=name)
    provision(lam, name, "1", 1)
    wait_for(lambda: config(lam, name, "1")["Status"] == "FAILED")
    assert provision(lam, name, "1", 1)["Status"] == "IN_PROGRESS"
    wait_for(lambda: config(lam, name, "1")["Status"] == "FAILED")
    # Deleting a failed configuration works like any other.
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    assert (
        lam.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"]
        == []
    )


def test_weighted_alias_provisions_both_versions(
    server: ServerProcess, lam: Any, name: str
) -> None:
    published(lam, name)
    lam.update_function_configuration(FunctionName=name, Timeout=5)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    lam.publish_version(FunctionName=name)
    lam.create_alias(
        FunctionName=name,
        Name="canary",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}},
    )
    provision(lam, name, "canary", 2)
    assert ready(lam, name, "canary")["AllocatedProvisionedConcurrentExecutions"] == 2
    seen = set()
    for _ in range(12):
        body = invoke(lam, f"{name}:canary")["body"]
        assert body["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == PROVISIONED
        seen.add(body["function_version"])
    assert seen <= {"1", "2"}
