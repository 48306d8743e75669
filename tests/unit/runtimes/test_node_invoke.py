"""The Node.js runtime client's invoke loop: context, async and callback handlers, errors."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from lambdalite.runtimes import RuntimeCommand

from .peer import Event, Run, run_bootstrap, write_code

KILLED_BY_SIGTERM = -signal.SIGTERM

CONTEXT_ECHO = """
    exports.handler = async (event, context) => ({
        event,
        awsRequestId: context.awsRequestId,
        invokedFunctionArn: context.invokedFunctionArn,
        functionName: context.functionName,
        functionVersion: context.functionVersion,
        memoryLimitInMB: context.memoryLimitInMB,
        logGroupName: context.logGroupName,
        logStreamName: context.logStreamName,
        clientContext: context.clientContext ?? null,
        identity: context.identity ?? null,
        remaining: context.getRemainingTimeInMillis(),
        waits: context.callbackWaitsForEmptyEventLoop,
        methods: [typeof context.done, typeof context.succeed, typeof context.fail],
        trace: process.env._X_AMZN_TRACE_ID ?? null,
        executionEnv: process.env.AWS_EXECUTION_ENV,
    });
"""


def run_app(node: RuntimeCommand, root: Path, source: str, events: list[Event], **kw: Any) -> Run:
    write_code(root, {"index.js": source})
    return run_bootstrap(node, root, "index.handler", events, **kw)


def test_context_fields(node: RuntimeCommand, tmp_path: Path) -> None:
    event = Event(body=b'{"key": "value", "n": [1, 2]}')
    run = run_app(node, tmp_path, CONTEXT_ECHO, [event])
    assert run.returncode == KILLED_BY_SIGTERM, run.stderr
    posted = run.peer.responses[event.request_id]
    assert posted.headers["Content-Type"] == "application/json"
    result = posted.json()
    assert result["event"] == {"key": "value", "n": [1, 2]}
    assert result["awsRequestId"] == event.request_id
    assert result["invokedFunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:fn"
    assert result["functionName"] == "fn"
    assert result["functionVersion"] == "$LATEST"
    assert result["memoryLimitInMB"] == "256"
    assert result["logGroupName"] == "/aws/lambda/fn"
    assert result["logStreamName"].startswith("2024/01/01/[$LATEST]")
    assert result["clientContext"] is None and result["identity"] is None
    assert 0 < result["remaining"] <= 60_000
    assert result["waits"] is True
    assert result["methods"] == ["function", "function", "function"]
    assert result["trace"] is None
    assert result["executionEnv"] == f"AWS_Lambda_{node.runtime_id}"


def test_client_context_identity_trace_and_deadline(node: RuntimeCommand, tmp_path: Path) -> None:
    client_context = {"client": {"installation_id": "inst-1"}, "custom": {"k": "v"}, "env": {}}
    identity = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
    rich = Event(
        headers={
            "Lambda-Runtime-Client-Context": json.dumps(client_context),
            "Lambda-Runtime-Cognito-Identity": json.dumps(identity),
            "Lambda-Runtime-Trace-Id": "Root=1-5e1b4151-43a0913a12345678901234567;Sampled=1",
        }
    )
    plain = Event()
    passed = Event(deadline_ms=1_000)
    run = run_app(node, tmp_path, CONTEXT_ECHO, [rich, plain, passed])
    result = run.response(rich)
    assert result["clientContext"] == client_context
    assert result["identity"] == identity
    assert result["trace"] == "Root=1-5e1b4151-43a0913a12345678901234567;Sampled=1"
    assert run.response(plain)["trace"] is None, "the trace id does not leak into the next invoke"
    assert run.response(passed)["remaining"] < 0, "the remaining time follows the deadline"


def test_bad_client_context_fails_the_invocation(node: RuntimeCommand, tmp_path: Path) -> None:
    bad = Event(headers={"Lambda-Runtime-Client-Context": "{not json"})
    good = Event()
    run = run_app(node, tmp_path, CONTEXT_ECHO, [bad, good])
    document = run.error(bad).json()
    assert document["errorType"] == "Error"
    assert document["errorMessage"].startswith("Cannot parse ClientContext as json: SyntaxError")
    assert run.response(good)["awsRequestId"] == good.request_id


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("exports.handler = async (event) => ({ doubled: event.n * 2 });", {"doubled": 8}),
        ("exports.handler = (event) => Promise.resolve([event.n]);", [4]),
        ("exports.handler = (event, context, callback) => callback(null, 'cb');", "cb"),
        (
            "exports.handler = (event, context) => context.succeed({ via: 'succeed' });",
            {"via": "succeed"},
        ),
        ("exports.handler = (event, context) => context.done(null, 7);", 7),
        ("exports.handler = async () => undefined;", None),
        ("exports.handler = (event) => { /* neither returns nor calls back */ };", None),
        ("exports.handler = async () => 'ünïcödé ✓';", "ünïcödé ✓"),
    ],
    ids=["async", "promise", "callback", "succeed", "done", "undefined", "no-callback", "unicode"],
)
def test_results(node: RuntimeCommand, tmp_path: Path, source: str, expected: Any) -> None:
    event = Event(body=b'{"n": 4}')
    run = run_app(node, tmp_path, source, [event])
    assert run.response(event) == expected


def test_callback_waits_for_the_event_loop(node: RuntimeCommand, tmp_path: Path) -> None:
    # The result object is serialized when it is sent: a change made by a timer after the
    # callback shows whether the runtime waited for the event loop to empty.
    source = """
        exports.handler = (event, context, callback) => {
            context.callbackWaitsForEmptyEventLoop = event.waits;
            const result = { timerRan: false };
            setTimeout(() => { result.timerRan = true; }, 30);
            callback(null, result);
        };
    """
    waiting = Event(body=b'{"waits": true}')
    immediate = Event(body=b'{"waits": false}')
    run = run_app(node, tmp_path, source, [waiting, immediate])
    assert run.response(waiting) == {"timerRan": True}
    assert run.response(immediate) == {"timerRan": False}


def test_context_methods_do_not_wait(node: RuntimeCommand, tmp_path: Path) -> None:
    source = """
        exports.handler = (event, context) => {
            const result = { timerRan: false };
            setTimeout(() => { result.timerRan = true; }, 30);
            context.succeed(result);
        };
    """
    event = Event()
    assert run_app(node, tmp_path, source, [event]).response(event) == {"timerRan": False}


def test_first_outcome_wins(node: RuntimeCommand, tmp_path: Path) -> None:
    source = """
        exports.handler = async (event, context, callback) => {
            callback(null, 'first');
            context.fail(new Error('ignored'));
            context.succeed('ignored too');
            return 'ignored as well';
        };
    """
    event, after = Event(), Event()
    run = run_app(node, tmp_path, source, [event, after])
    assert run.response(event) == "first"
    assert event.request_id not in run.peer.errors
    assert run.response(after) == "first"


@pytest.mark.parametrize(
    ("source", "error_type", "message"),
    [
        ("exports.handler = async () => { throw new Error('boom'); };", "Error", "boom"),
        ("exports.handler = () => { throw new TypeError('bad type'); };", "TypeError", "bad type"),
        (
            "exports.handler = (e, c, callback) => callback(new RangeError('cb'));",
            "RangeError",
            "cb",
        ),
        ("exports.handler = (e, c, callback) => callback('plain text');", "string", "plain text"),
        ("exports.handler = (e, context) => context.fail();", "string", "handled"),
        (
            "exports.handler = async () => Promise.reject({ code: 42 });",
            "object",
            "[object Object]",
        ),
        (
            "class OrderError extends Error { constructor(m) { super(m); this.name = 'OrderError'; } }\n"
            "exports.handler = async () => { throw new OrderError('no stock'); };",
            "OrderError",
            "no stock",
        ),
        (
            "exports.handler = async () => 10n;",
            "Runtime.JSONStringifyError",
            "Unable to stringify response body",
        ),
    ],
    ids=["async", "sync", "callback", "string", "fail-empty", "object", "custom", "unserializable"],
)
def test_invocation_errors(
    node: RuntimeCommand, tmp_path: Path, source: str, error_type: str, message: str
) -> None:
    event = Event()
    run = run_app(node, tmp_path, source, [event])
    assert run.returncode == KILLED_BY_SIGTERM, "a handler error keeps the environment alive"
    posted = run.error(event)
    document = posted.json()
    assert set(document) == {"errorType", "errorMessage", "trace"}
    assert (document["errorType"], document["errorMessage"]) == (error_type, message)
    assert "Lambda-Runtime-Function-Error-Type" not in posted.headers
    if error_type[0].isupper():
        assert document["trace"][0] == f"{error_type}: {message}"
        assert document["trace"][1].lstrip().startswith("at ")
    else:
        assert document["trace"] == []
    line = [line for line in run.stdout_lines() if "\tERROR\tInvoke Error \t" in line]
    assert len(line) == 1, run.stdout
    assert line[0].split("\t")[1] == event.request_id


def test_error_carries_an_xray_cause(node: RuntimeCommand, tmp_path: Path) -> None:
    event = Event()
    run = run_app(
        node, tmp_path, "exports.handler = async () => { throw new Error('ünï'); };", [event]
    )
    cause = json.loads(run.error(event).headers["Lambda-Runtime-Function-XRay-Error-Cause"])
    assert cause["working_directory"] == str(tmp_path)
    exception = cause["exceptions"][0]
    assert (exception["type"], exception["message"]) == ("Error", "ünï")
    assert exception["stack"][0]["path"] == str(tmp_path / "index.js")
    assert exception["stack"][0]["line"] == 1
    assert str(tmp_path / "index.js") in cause["paths"]


def test_unsettled_async_handler_is_a_node_exit_error(node: RuntimeCommand, tmp_path: Path) -> None:
    event, after = Event(), Event()
    run = run_app(
        node, tmp_path, "exports.handler = async () => new Promise(() => {});", [event, after]
    )
    assert run.error(event).json()["errorType"] == "Runtime.NodeJsExit"
    assert run.error(after).json()["errorType"] == "Runtime.NodeJsExit", "the runtime carries on"


@pytest.mark.parametrize(
    ("source", "exit_code", "error_type", "message", "label"),
    [
        (
            "exports.handler = async () => { Promise.reject(new Error('floating')); "
            "return new Promise(() => setTimeout(() => {}, 5000)); };",
            128,
            "Runtime.UnhandledPromiseRejection",
            "Error: floating",
            "Unhandled Promise Rejection",
        ),
        (
            "exports.handler = (e, c, callback) => { "
            "setTimeout(() => { throw new Error('from a timer'); }, 0); };",
            129,
            "Error",
            "from a timer",
            "Uncaught Exception",
        ),
    ],
    ids=["unhandled-rejection", "uncaught-exception"],
)
def test_escaped_errors_fail_the_invocation_and_exit(
    node: RuntimeCommand,
    tmp_path: Path,
    source: str,
    exit_code: int,
    error_type: str,
    message: str,
    label: str,
) -> None:
    event = Event()
    run = run_app(node, tmp_path, source, [event, Event()])
    assert run.returncode == exit_code, (run.stdout, run.stderr)
    document = run.error(event).json()
    assert (document["errorType"], document["errorMessage"]) == (error_type, message)
    assert len(run.peer.next_calls) == 1, "the environment is not reused"
    assert any(f"\tERROR\t{label} \t" in line for line in run.stdout_lines()), run.stdout


def test_invalid_json_event_is_an_invocation_error(node: RuntimeCommand, tmp_path: Path) -> None:
    bad, good = Event(body=b"{oops"), Event(body=b'"fine"')
    run = run_app(node, tmp_path, "exports.handler = async (event) => event;", [bad, good])
    assert run.error(bad).json()["errorType"] == "SyntaxError"
    assert run.response(good) == "fine"


def test_reconnects_when_the_api_closes_connections(node: RuntimeCommand, tmp_path: Path) -> None:
    events = [Event(body=json.dumps(i).encode()) for i in range(3)]
    run = run_app(
        node,
        tmp_path,
        "exports.handler = async (event) => event * 10;",
        events,
        close_after_next=True,
    )
    assert [run.response(e) for e in events] == [0, 10, 20]


def test_chunked_events(node: RuntimeCommand, tmp_path: Path) -> None:
    chunked = Event(body=b'{"items": [1, 2, 3], "name": "chunked body"}', chunked=True)
    run = run_app(node, tmp_path, "exports.handler = async (event) => event;", [chunked])
    assert run.response(chunked) == {"items": [1, 2, 3], "name": "chunked body"}


def test_a_broken_runtime_api_ends_the_process(node: RuntimeCommand, tmp_path: Path) -> None:
    served = Event()
    source = "exports.handler = async () => 1;"
    run = run_app(node, tmp_path, source, [served, Event(action="fail")])
    assert run.returncode == 1
    assert run.response(served) == 1
    assert "Runtime API request failed, exiting" in run.stderr
    # A fresh connection closed without an answer is not retried (a reused one would be).
    closed = run_app(node, tmp_path, source, [Event(action="close")])
    assert closed.returncode == 1
    assert "Runtime API request failed, exiting" in closed.stderr
