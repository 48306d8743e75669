"""Pure rules of asynchronous invocation: lineage, invocation records, dead letters, figures."""

from __future__ import annotations

import json

from lambdalite.control.asyncevent import AsyncEvent, function_of, queue_name
from lambdalite.control.records import (
    RETRIES_EXHAUSTED,
    SUCCESS,
    ZERO_RESERVED,
    dead_letter,
    error_message,
    invocation_record,
)
from lambdalite.control.recursion import ALLOW, MAX_DEPTH, TERMINATE, lineage_of, too_deep
from lambdalite.control.stats import prometheus
from lambdalite.invocation.model import InvokeResult

ARN = "arn:aws:lambda:us-east-1:000000000000:function:fn"


def test_lineage_starts_a_chain_and_counts_hops() -> None:
    first = lineage_of(None, ARN)
    assert first.depth == 1 and len(first.chain) == 8
    trace = first.trace("Root=1-5f84c7a1-0123456789abcdef01234567;Sampled=0")
    assert trace.endswith(f";Lineage={first.chain}:1")
    second = lineage_of(trace, "arn:aws:lambda:us-east-1:000000000000:function:other")
    assert (second.chain, second.depth) == (first.chain, 2)
    # A lineage already present is replaced, not repeated; AWS's versioned form is read too.
    assert second.trace(trace).count("Lineage=") == 1
    assert lineage_of("Root=1-a-b;Lineage=2:a87bd80c:5", ARN).depth == 6
    deep = lineage_of(f"Root=x;Lineage=abcd0123:{MAX_DEPTH}", ARN)
    assert deep.depth == MAX_DEPTH + 1
    assert too_deep(deep, TERMINATE) and not too_deep(deep, ALLOW)
    assert not too_deep(lineage_of(f"Lineage=abcd0123:{MAX_DEPTH - 1}", ARN), TERMINATE)


def test_async_event_round_trips_through_a_queue_body() -> None:
    event = AsyncEvent("rid", "fn", "live", ARN + ":live", "Root=x", "abcd0123", 3)
    message = event.message(b'{"a": 1}', due_at=5)
    assert message.queue == queue_name("fn") and function_of(message.queue) == "fn"
    assert AsyncEvent.load(json.loads(json.dumps(message.body))) == event
    assert event.failed_attempt().attempts == 1 and event.backed_off().backoffs == 1
    assert event.backed_off().failed_attempt().backoffs == 0


def test_invocation_records_match_the_documented_shape() -> None:
    ok = InvokeResult(payload=b'{"answer": 42}')
    record = invocation_record(
        request_id="rid",
        function_arn=ARN + ":$LATEST",
        condition=SUCCESS,
        invoke_count=1,
        payload=b'{"q": 1}',
        executed_version="$LATEST",
        response=ok,
        now=1573755365.568,
    )
    assert record == {
        "version": "1.0",
        "timestamp": "2019-11-14T18:16:05.568Z",
        "requestContext": {
            "requestId": "rid",
            "functionArn": ARN + ":$LATEST",
            "condition": "Success",
            "approximateInvokeCount": 1,
        },
        "requestPayload": {"q": 1},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
        "responsePayload": {"answer": 42},
    }
    failed = InvokeResult(
        payload=b'{"errorMessage": "boom", "errorType": "ValueError"}',
        function_error="Unhandled",
    )
    record = invocation_record(
        request_id="rid",
        function_arn=ARN + ":1",
        condition=RETRIES_EXHAUSTED,
        invoke_count=3,
        payload=b"{}",
        executed_version="1",
        response=failed,
        now=0,
    )
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "1",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorType"] == "ValueError"
    unrun = invocation_record(
        request_id="rid",
        function_arn=ARN + ":$LATEST",
        condition=ZERO_RESERVED,
        invoke_count=0,
        payload=b'"text"',
        executed_version="$LATEST",
        response=None,
        now=0,
    )
    assert "responseContext" not in unrun and "responsePayload" not in unrun
    assert unrun["requestPayload"] == "text"


def test_dead_letters_carry_the_event_and_the_error() -> None:
    failed = InvokeResult(payload=json.dumps({"errorMessage": "é" * 2000}).encode())
    message = error_message(failed, "fallback")
    letter = dead_letter(
        source_arn=ARN, request_id="rid", payload=b'{"a": 1}', status=200, message=message
    )
    assert letter.kind == "dead-letter" and letter.body == '{"a": 1}'
    assert letter.attributes["RequestID"] == ("String", "rid")
    assert letter.attributes["ErrorCode"] == ("Number", "200")
    kind, text = letter.attributes["ErrorMessage"]
    assert kind == "String" and len(text.encode()) <= 1024 and text.startswith("é")
    assert error_message(None, "EventAgeExceeded") == "EventAgeExceeded"


def test_prometheus_text_has_one_family_per_metric_and_escapes_labels() -> None:
    function = {
        "concurrentExecutions": 2,
        "asyncEventsRunning": 1,
        "reservedConcurrency": None,
        "provisionedConcurrency": 0,
        "provisionedEnvironments": 0,
        "throttles": {"ConcurrentInvocationLimitExceeded": 3},
        "asyncQueueDepth": 7,
        "asyncEventsClaimed": 1,
        "asyncOldestEventAgeSeconds": 1.5,
        "asyncEventsReceived": 9,
        "asyncOutcomes": {"Success": 4},
        "asyncRequeued": {},
        "destinationDeliveryFailures": 0,
        "asyncEventsDropped": 0,
    }
    account = {
        "concurrencyLimit": 1000,
        "unreservedConcurrencyLimit": 900,
        "concurrentExecutions": 2,
        "unreservedConcurrentExecutions": 2,
        "throttles": 3,
        "asyncQueueDepth": 7,
        "asyncOldestEventAgeSeconds": 1.5,
        "asyncWorkers": 64,
        "asyncEventsRunning": 1,
        "asyncQueueCommits": 5,
        "environmentsInitializing": 1,
        "initsWaiting": 0,
    }
    text = prometheus({"account": account, "functions": {'we"ird': function}})
    lines = text.splitlines()
    assert "lambdalite_account_concurrency_limit 1000" in lines
    assert 'lambdalite_async_queue_depth{function="we\\"ird"} 7' in lines
    assert 'lambdalite_async_oldest_event_age_seconds{function="we\\"ird"} 1.5' in lines
    assert (
        'lambdalite_throttles_total{function="we\\"ird",'
        'reason="ConcurrentInvocationLimitExceeded"} 3'
    ) in lines
    assert not any("reserved_concurrency{" in line for line in lines)  # None is left out
    families = [line.split()[2] for line in lines if line.startswith("# TYPE")]
    assert len(families) == len(set(families))
    samples = [line for line in lines if not line.startswith("#")]
    assert all(line.split()[0].split("{")[0] in families for line in samples)
