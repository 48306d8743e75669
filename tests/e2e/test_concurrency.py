"""The concurrency model beyond the account limit and reservations (see test_invoke.py for
those): the scaling rate of new environments and provisioned concurrency.

The server allows one new environment per function per 10 seconds (``scaling_rate=1``), so
a second environment cannot start during a test while warm reuse is unaffected.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.e2e.asynchelp import send_event, starts, stats, wait_for
from tests.e2e.harness import ServerProcess, create


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("scaling"),
        keep_alive=60,
        scaling_rate=1,
        account_concurrency=200,
        async_delay_scale=0.01,
    ).start()
    yield proc
    assert proc.stop() == 0, proc.output()


@pytest.fixture(scope="module")
def lam(server: ServerProcess) -> Any:
    return server.client()


def sleeper(lam: Any, name: str, seconds: float) -> Any:
    payload = json.dumps({"action": "sleep", "seconds": seconds}).encode()
    return lam.invoke(FunctionName=name, Payload=payload)


def throttle(lam: Any, name: str) -> dict[str, Any]:
    with pytest.raises(lam.exceptions.TooManyRequestsException) as exc:
        lam.invoke(FunctionName=name, Payload=b"{}")
    response: dict[str, Any] = exc.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    return response


def test_scaling_rate_throttles_new_environments(
    server: ServerProcess, lam: Any, name: str
) -> None:
    create(lam, name)
    assert lam.invoke(FunctionName=name, Payload=b"{}")["StatusCode"] == 200  # the one new env
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(sleeper, lam, name, 2)
        wait_for(lambda: stats(server)["functions"][name]["concurrentExecutions"])
        error = throttle(lam, name)
        assert error["Reason"] == "FunctionInvocationRateLimitExceeded"
        assert int(error["ResponseMetadata"]["HTTPHeaders"]["retry-after"]) >= 1
        # An asynchronous event waits and is retried instead.
        request_id = send_event(lam, name, {"async": True})
        assert busy.result()["StatusCode"] == 200
    wait_for(lambda: starts(server, name, request_id))
    figures = stats(server)["functions"][name]
    assert figures["throttles"]["FunctionInvocationRateLimitExceeded"] >= 2
    assert figures["asyncRequeued"]["throttle"] >= 1
    # Warm environments need no new capacity: sequential calls keep working.
    for _ in range(3):
        assert lam.invoke(FunctionName=name, Payload=b"{}")["StatusCode"] == 200


def test_reserved_functions_get_the_reserved_rate_reason(
    server: ServerProcess, lam: Any, name: str
) -> None:
    create(lam, name)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)
    lam.invoke(FunctionName=name, Payload=b"{}")
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(sleeper, lam, name, 2)
        wait_for(lambda: stats(server)["functions"][name]["concurrentExecutions"])
        assert throttle(lam, name)["Reason"] == "ReservedFunctionInvocationRateLimitExceeded"
        assert busy.result()["StatusCode"] == 200


def test_provisioned_concurrency_configuration(lam: Any, name: str) -> None:
    create(lam, name)
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as exc:
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1
        )
    assert "unpublished function versions" in str(exc.value)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="nope", ProvisionedConcurrentExecutions=1
        )
    before = lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
    put = lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=2
    )
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert put["RequestedProvisionedConcurrentExecutions"] == 2
    assert put["Status"] == "IN_PROGRESS"  # the environments initialize, then READY
    after = lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
    assert after == before - 2  # carved out of the unreserved pool
    get = lam.get_provisioned_concurrency_config
    got = wait_for(
        lambda: (c := get(FunctionName=name, Qualifier="live")) and c["Status"] == "READY" and c
    )
    assert got["AllocatedProvisionedConcurrentExecutions"] == 2
    # A reservation must hold the provisioned concurrency; provisioned then counts against it.
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=3)
    reserved = lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
    assert reserved == before - 3
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as exc:
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=2
        )
    assert "reservedConcurrentExecution" in str(exc.value)
    listed = lam.list_provisioned_concurrency_configs(FunctionName=name)
    assert [
        c["FunctionArn"].rsplit(":", 1)[1] for c in listed["ProvisionedConcurrencyConfigs"]
    ] == ["live"]
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    with pytest.raises(lam.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    # Provisioned concurrency may not eat into the unreserved minimum either.
    other = f"{name}-big"
    create(lam, other)
    lam.publish_version(FunctionName=other)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as exc:
        lam.put_provisioned_concurrency_config(
            FunctionName=other, Qualifier="1", ProvisionedConcurrentExecutions=150
        )
    assert "minimum value of [100]" in str(exc.value)


def test_provisioned_environments_need_no_scaling_capacity(
    server: ServerProcess, lam: Any, name: str
) -> None:
    create(lam, name)
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=2
    )
    # Three at once: two in provisioned capacity, the third takes the one scaling token.
    with ThreadPoolExecutor(3) as pool:
        calls = [pool.submit(sleeper, lam, f"{name}:live", 1) for _ in range(3)]
        assert [c.result()["StatusCode"] for c in calls] == [200, 200, 200]
    assert stats(server)["functions"][name]["provisionedConcurrency"] == 2
    assert (
        "FunctionInvocationRateLimitExceeded" not in stats(server)["functions"][name]["throttles"]
    )
    # A second round reuses the three warm environments: no new capacity needed.
    with ThreadPoolExecutor(3) as pool:
        calls = [pool.submit(sleeper, lam, f"{name}:live", 1) for _ in range(3)]
        assert all(c.result()["StatusCode"] == 200 for c in calls)
