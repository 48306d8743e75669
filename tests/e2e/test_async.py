"""Asynchronous invocation through unmodified boto3: event invoke configs, retries, event age,
destinations and their records, throttled events, reserved concurrency 0, config precedence.

The server runs with ``async_delay_scale=0.01``: the 1- and 2-minute retry waits become 0.6 s
and 1.2 s, backoffs start at 10 ms, and ``MaximumEventAgeInSeconds`` shrinks by the same
factor (60 s → 0.6 s). Destinations are functions of the ``basic`` fixture, which log the
event they got, so the records are read back from their logs.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.asynchelp import (
    fn_arn,
    records_for,
    send_event,
    starts,
    stats,
    wait_for,
    wait_record,
)
from tests.e2e.harness import ServerProcess, create

SCALE = 0.01


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, store_url: str | None
) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("async"), store_url, keep_alive=30, async_delay_scale=SCALE
    ).start()
    yield proc
    assert proc.stop() == 0, proc.output()


@pytest.fixture(scope="module")
def lam(server: ServerProcess) -> Any:
    return server.client()


def with_destinations(lam: Any, name: str, **config: Any) -> str:
    """Create ``name`` and ``name-dest``; put ``config`` with destinations (``"dest"``)."""
    create(lam, name)
    dest = f"{name}-dest"
    create(lam, dest)
    destinations = {}
    for side in ("OnSuccess", "OnFailure"):
        if config.pop(side, False):
            destinations[side] = {"Destination": fn_arn(dest)}
    lam.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig=destinations, **config
    )
    return dest


def test_event_invoke_config_operations(lam: Any, name: str) -> None:
    create(lam, name)
    dest = f"{name}-dest"
    create(lam, dest)
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as exc:
        lam.get_function_event_invoke_config(FunctionName=name)
    assert exc.value.response["Error"]["Message"] == (
        f"The function {fn_arn(name, '$LATEST')} doesn't have an EventInvokeConfig"
    )
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as exc:
        lam.put_function_event_invoke_config(FunctionName=name)
    assert "at least one of error handling or destination" in str(exc.value)

    put = lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": fn_arn(dest)}},
    )
    assert put["FunctionArn"] == fn_arn(name, "$LATEST")
    assert put["MaximumRetryAttempts"] == 1 and "MaximumEventAgeInSeconds" not in put
    assert put["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {"Destination": fn_arn(dest)}}
    assert abs(put["LastModified"].timestamp() - time.time()) < 60
    # Update merges: the members it does not name are kept.
    updated = lam.update_function_event_invoke_config(
        FunctionName=name, MaximumEventAgeInSeconds=100
    )
    assert updated["MaximumRetryAttempts"] == 1 and updated["MaximumEventAgeInSeconds"] == 100
    assert updated["DestinationConfig"]["OnFailure"] == {"Destination": fn_arn(dest)}
    got = lam.get_function_event_invoke_config(FunctionName=name)
    assert {k: v for k, v in got.items() if k != "ResponseMetadata"} == {
        k: v for k, v in updated.items() if k != "ResponseMetadata"
    }
    # Put replaces the whole configuration.
    replaced = lam.put_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=200)
    assert "MaximumRetryAttempts" not in replaced
    assert replaced["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}

    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lam.put_function_event_invoke_config(FunctionName=name, Qualifier="1", MaximumRetryAttempts=0)
    lam.put_function_event_invoke_config(FunctionName=f"{name}:live", MaximumRetryAttempts=2)
    listed = lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert sorted(c["FunctionArn"] for c in listed) == sorted(
        [fn_arn(name, "$LATEST"), fn_arn(name, "1"), fn_arn(name, "live")]
    )
    assert (
        len(
            lam.list_function_event_invoke_configs(FunctionName=name, MaxItems=2)[
                "FunctionEventInvokeConfigs"
            ]
        )
        == 2
    )
    lam.delete_function_event_invoke_config(FunctionName=name, Qualifier="live")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_event_invoke_config(FunctionName=name, Qualifier="live")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.delete_function_event_invoke_config(FunctionName=name, Qualifier="live")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.update_function_event_invoke_config(
            FunctionName=name, Qualifier="live", MaximumRetryAttempts=1
        )
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.put_function_event_invoke_config(
            FunctionName=name, Qualifier="nope", MaximumRetryAttempts=1
        )
    # Deleting an alias takes its config along; deleting the function takes them all.
    lam.put_function_event_invoke_config(
        FunctionName=name, Qualifier="live", MaximumRetryAttempts=1
    )
    lam.delete_alias(FunctionName=name, Name="live")
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_event_invoke_config(FunctionName=name, Qualifier="live")
    lam.delete_function(FunctionName=name)
    create(lam, name)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_event_invoke_config(FunctionName=name)


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        (fn_arn("no-such-function"), "The destination ARN {arn} is invalid."),
        (
            "arn:aws:sqs:us-east-1:000000000000:no-such-queue",
            "The destination ARN {arn} is invalid.",
        ),
        (
            "arn:aws:sns:us-east-1:000000000000:no-such-topic",
            "The destination ARN {arn} is invalid.",
        ),
        ("arn:aws:dynamodb:us-east-1:000000000000:table/t", "The provided destination config"),
        ("self", "You can't specify the function as a destination for itself."),
    ],
)
def test_unusable_destinations_are_rejected(
    lam: Any, name: str, destination: str, message: str
) -> None:
    create(lam, name)
    arn = fn_arn(name, "$LATEST") if destination == "self" else destination
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as exc:
        lam.put_function_event_invoke_config(
            FunctionName=name, DestinationConfig={"OnFailure": {"Destination": arn}}
        )
    assert exc.value.response["Error"]["Message"].startswith(message.format(arn=arn))


def test_dead_letter_target_must_exist_on_this_server(lam: Any, name: str) -> None:
    queue = "arn:aws:sqs:us-east-1:000000000000:dlq"
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as exc:
        create(lam, name, DeadLetterConfig={"TargetArn": queue})
    assert queue in str(exc.value)
    create(lam, name, DeadLetterConfig={"TargetArn": ""})
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.update_function_configuration(
            FunctionName=name, DeadLetterConfig={"TargetArn": fn_arn(name)}
        )


def test_function_errors_are_retried_with_the_aws_spacing(
    server: ServerProcess, lam: Any, name: str
) -> None:
    dest = with_destinations(lam, name, OnFailure=True, MaximumRetryAttempts=2)
    request_id = send_event(lam, name, {"action": "raise", "message": "nope"})
    record = wait_record(server, dest, request_id)
    assert record["version"] == "1.0"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", record["timestamp"])
    assert record["requestContext"] == {
        "requestId": request_id,
        "functionArn": fn_arn(name, "$LATEST"),
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert record["requestPayload"] == {"action": "raise", "message": "nope"}
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorType"] == "ValueError"
    assert record["responsePayload"]["errorMessage"] == "nope"
    attempts = starts(server, name, request_id)
    assert len(attempts) == 3
    # ≈1 and ≈2 minutes on AWS, scaled: never earlier than 0.6 s and 1.2 s.
    assert attempts[1] - attempts[0] >= 60_000 * SCALE - 10
    assert attempts[2] - attempts[1] >= 120_000 * SCALE - 10


def test_success_record_and_no_retries(server: ServerProcess, lam: Any, name: str) -> None:
    dest = with_destinations(lam, name, OnSuccess=True, OnFailure=True, MaximumRetryAttempts=0)
    ok = send_event(lam, name, {"x": 1})
    failed = send_event(lam, name, {"action": "raise"})
    record = wait_record(server, dest, ok)
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"]["event"] == {"x": 1}
    assert record["responsePayload"]["request_id"] == ok
    record = wait_record(server, dest, failed)
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert len(starts(server, name, failed)) == 1


def test_event_age_runs_out_between_retries(server: ServerProcess, lam: Any, name: str) -> None:
    # 150 s scaled is 1.5 s: the first retry (0.6 s) fits, the second (1.2 s later) does not.
    dest = with_destinations(
        lam, name, OnFailure=True, MaximumRetryAttempts=2, MaximumEventAgeInSeconds=150
    )
    lam.invoke(FunctionName=name, Payload=b"{}")  # warm, so the first attempt starts at once
    request_id = send_event(lam, name, {"action": "raise"})
    record = wait_record(server, dest, request_id)
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert len(starts(server, name, request_id)) == 2


def hold(lam: Any, name: str, seconds: float) -> Any:
    """Occupy one unit of ``name``'s concurrency with a synchronous call for ``seconds``."""
    pool = ThreadPoolExecutor(1)
    payload = json.dumps({"action": "sleep", "seconds": seconds}).encode()
    future = pool.submit(lam.invoke, FunctionName=name, Payload=payload)
    pool.shutdown(wait=False)
    return future


def test_throttled_events_wait_and_run_later(server: ServerProcess, lam: Any, name: str) -> None:
    dest = with_destinations(lam, name, OnSuccess=True)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    busy = hold(lam, name, 2)
    wait_for(lambda: stats(server)["functions"].get(name, {}).get("concurrentExecutions"))
    request_id = send_event(lam, name, {"x": "later"})
    record = wait_record(server, dest, request_id)
    assert record["requestContext"]["condition"] == "Success"
    assert busy.result()["StatusCode"] == 200
    figures = stats(server)["functions"][name]
    assert figures["asyncRequeued"]["throttle"] >= 1
    assert figures["throttles"]["ReservedFunctionConcurrentInvocationLimitExceeded"] >= 1
    # It ran only once the synchronous call had released the function's only slot.
    assert (
        starts(server, name, request_id)[0]
        >= starts(server, name, busy.result()["ResponseMetadata"]["RequestId"])[0] + 1500
    )


def test_throttled_events_expire(server: ServerProcess, lam: Any, name: str) -> None:
    dest = with_destinations(lam, name, OnFailure=True, MaximumEventAgeInSeconds=60)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    busy = hold(lam, name, 3)
    wait_for(lambda: stats(server)["functions"].get(name, {}).get("concurrentExecutions"))
    request_id = send_event(lam, name, {"x": "never"})
    record = wait_record(server, dest, request_id)
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert "responseContext" not in record and "responsePayload" not in record
    assert busy.result()["StatusCode"] == 200
    assert starts(server, name, request_id) == []


def test_zero_reserved_concurrency_sends_events_straight_to_failure(
    server: ServerProcess, lam: Any, name: str
) -> None:
    dest = with_destinations(lam, name, OnFailure=True)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    request_id = send_event(lam, name, {"x": 0})
    record = wait_record(server, dest, request_id)
    assert record["requestContext"]["condition"] == "ZeroReservedConcurrency"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert "responseContext" not in record
    assert starts(server, name, request_id) == []
    assert stats(server)["functions"][name]["asyncOutcomes"] == {"ZeroReservedConcurrency": 1}


def test_each_qualifier_uses_its_own_config(server: ServerProcess, lam: Any, name: str) -> None:
    create(lam, name)
    for suffix in ("latest", "alias"):
        create(lam, f"{name}-{suffix}")
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lam.put_function_event_invoke_config(
        FunctionName=name,
        DestinationConfig={"OnSuccess": {"Destination": fn_arn(f"{name}-latest")}},
    )
    lam.put_function_event_invoke_config(
        FunctionName=name,
        Qualifier="live",
        DestinationConfig={"OnSuccess": {"Destination": fn_arn(f"{name}-alias", "$LATEST")}},
    )
    via_alias = send_event(lam, name, {"via": "alias"}, Qualifier="live")
    unqualified = send_event(lam, name, {"via": "latest"})
    version = send_event(lam, f"{name}:1", {"via": "version"})
    record = wait_record(server, f"{name}-alias", via_alias)
    assert record["requestContext"]["functionArn"] == fn_arn(name, "1")
    assert record["responseContext"]["executedVersion"] == "1"
    wait_record(server, f"{name}-latest", unqualified)
    wait_for(lambda: starts(server, name, version))
    # The version has no config of its own: defaults, no destination.
    assert not records_for(server, f"{name}-latest", via_alias)
    assert not records_for(server, f"{name}-alias", unqualified)
    for dest in ("latest", "alias"):
        assert not records_for(server, f"{name}-{dest}", version)


def test_a_destination_that_vanished_is_counted(server: ServerProcess, lam: Any, name: str) -> None:
    dest = with_destinations(lam, name, OnSuccess=True)
    lam.delete_function(FunctionName=dest)
    request_id = send_event(lam, name, {"x": 1})
    wait_for(lambda: stats(server)["functions"][name]["destinationDeliveryFailures"] == 1)
    # Log lines reach the store in batches, possibly after the figure moved.
    wait_for(lambda: starts(server, name, request_id))
    assert len(starts(server, name, request_id)) == 1


def test_events_of_a_deleted_function_are_discarded(
    server: ServerProcess, lam: Any, name: str
) -> None:
    create(lam, name)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    busy = hold(lam, name, 4)
    wait_for(lambda: stats(server)["functions"].get(name, {}).get("concurrentExecutions"))
    queued = [send_event(lam, name, {"n": n}) for n in range(3)]
    assert stats(server)["functions"][name]["asyncQueueDepth"] == 3
    lam.delete_function(FunctionName=name)
    assert stats(server)["functions"].get(name, {}).get("asyncQueueDepth", 0) == 0
    busy.result()
    assert all(starts(server, name, request_id) == [] for request_id in queued)


def test_stats_command_and_metrics_endpoint(server: ServerProcess, lam: Any, name: str) -> None:
    import subprocess
    import sys

    import httpx

    create(lam, name)
    request_id = send_event(lam, name, {"n": 1})
    wait_for(lambda: starts(server, name, request_id))
    wait_for(lambda: stats(server)["functions"][name]["asyncOutcomes"].get("Success"))
    command = [sys.executable, "-m", "lambdalite", "stats", "--endpoint-url", server.endpoint]
    table = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert table.startswith("account: ")
    row = next(line.split() for line in table.splitlines() if line.startswith(name + " "))
    assert row[0] == name and row[-3:] == ["1", "1", "0"]  # received, succeeded, failed
    raw = subprocess.run(
        [*command, "--json", "--function", name], capture_output=True, text=True, check=True
    ).stdout
    figures = json.loads(raw)
    assert list(figures["functions"]) == [name]
    assert figures["functions"][name]["asyncEventsReceived"] == 1
    response = httpx.get(f"{server.endpoint}/_lambdalite/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = response.text.splitlines()
    assert f'lambdalite_async_events_received_total{{function="{name}"}} 1' in lines
    assert (
        f'lambdalite_async_events_completed_total{{function="{name}",condition="Success"}} 1'
    ) in lines
    assert any(line.startswith("lambdalite_account_async_queue_depth ") for line in lines)


def test_a_scheduled_retry_survives_a_restart(tmp_path: Path, fresh_store_url: str | None) -> None:
    settings = {"keep_alive": 30, "async_delay_scale": 0.05}  # the retry waits 3 s
    first = ServerProcess(tmp_path, fresh_store_url, **settings).start()
    lam = first.client()
    dest = with_destinations(lam, "flaky", OnFailure=True, MaximumRetryAttempts=1)
    request_id = send_event(lam, "flaky", {"action": "raise"})
    wait_for(lambda: starts(first, "flaky", request_id))
    assert first.stop() == 0
    second = ServerProcess(tmp_path, fresh_store_url, **settings).start()
    try:
        record = wait_record(second, dest, request_id)
        assert record["requestContext"]["approximateInvokeCount"] == 2
        assert len(starts(second, "flaky", request_id)) == 2
    finally:
        assert second.stop() == 0, second.output()
