"""Recursive loop detection: functions that keep invoking each other are stopped after 16 hops.

The depth travels only in the trace header: the runtime exposes the platform's trace id as
``_X_AMZN_TRACE_ID`` and AWS SDKs copy it into the ``X-Amzn-Trace-Id`` header of every call.
The looping functions do exactly that with ``urllib`` (importing boto3 in each environment
would make the test slow); the synchronous test runs botocore's own hook.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.asynchelp import fn_arn, log_lines, received_events, wait_for
from tests.e2e.harness import ROLE, ServerProcess, create, zip_files

LOOP = """
import json, os, urllib.request

def handler(event, context):
    hop = event["hop"] + 1
    print(f"hop {hop} {event['tag']} {os.environ.get('_X_AMZN_TRACE_ID', '')}")
    if hop < event["stop"]:
        target = event["pair"][hop % 2]
        request = urllib.request.Request(
            f"{os.environ['ENDPOINT']}/2015-03-31/functions/{target}/invocations",
            data=json.dumps(dict(event, hop=hop)).encode(),
            headers={"X-Amz-Invocation-Type": "Event",
                     "X-Amzn-Trace-Id": os.environ["_X_AMZN_TRACE_ID"]},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).read()
    return hop
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("loops"), sandbox="process", keep_alive=30)
    yield proc.start()
    assert proc.stop() == 0, proc.output()


@pytest.fixture(scope="module")
def lam(server: ServerProcess) -> Any:
    return server.client()


def make_pair(server: ServerProcess, lam: Any, name: str) -> tuple[str, str, str]:
    first, second, dest = f"{name}-a", f"{name}-b", f"{name}-dest"
    variables = {"ENDPOINT": server.endpoint}
    for fn in (first, second):
        lam.create_function(
            FunctionName=fn,
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Timeout=30,
            Code={"ZipFile": zip_files({"app.py": LOOP})},
            Environment={"Variables": variables},
        )
    create(lam, dest)
    for fn in (first, second):
        lam.put_function_event_invoke_config(
            FunctionName=fn, DestinationConfig={"OnFailure": {"Destination": fn_arn(dest)}}
        )
    return first, second, dest


def hops(server: ServerProcess, functions: tuple[str, str], tag: str) -> list[int]:
    return sorted(
        int(e["message"].split()[1])
        for fn in functions
        for e in log_lines(server, fn)
        if e["message"].startswith("hop ") and e["message"].split()[2] == tag
    )


def start_loop(lam: Any, first: str, second: str, tag: str, stop: int) -> str:
    event = {"hop": 0, "stop": stop, "pair": [first, second], "tag": tag}
    response = lam.invoke(
        FunctionName=first, InvocationType="Event", Payload=json.dumps(event).encode()
    )
    request_id: str = response["ResponseMetadata"]["RequestId"]
    return request_id


def test_a_loop_is_stopped_after_16_invocations(server: ServerProcess, lam: Any, name: str) -> None:
    first, second, dest = make_pair(server, lam, name)
    assert lam.get_function_recursion_config(FunctionName=first)["RecursiveLoop"] == "Terminate"
    start_loop(lam, first, second, "stopped", stop=40)
    record = wait_for(
        lambda: [
            e
            for e in _records(server, dest)
            if e["requestContext"]["condition"] == "RecursiveInvocationException"
        ],
        timeout=60,
    )[0]
    assert record["requestContext"]["functionArn"] == fn_arn(first, "$LATEST")
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert record["requestPayload"]["hop"] == 16
    assert hops(server, (first, second), "stopped") == list(range(1, 17))
    traces = [e["message"] for e in log_lines(server, first) if e["message"].startswith("hop 1 ")]
    assert ":1" in traces[0].split("Lineage=")[1]


def test_allow_lets_a_loop_go_on(server: ServerProcess, lam: Any, name: str) -> None:
    first, second, dest = make_pair(server, lam, name)
    for fn in (first, second):
        out = lam.put_function_recursion_config(FunctionName=fn, RecursiveLoop="Allow")
        assert out["RecursiveLoop"] == "Allow"
    assert lam.get_function_recursion_config(FunctionName=second)["RecursiveLoop"] == "Allow"
    start_loop(lam, first, second, "allowed", stop=20)
    wait_for(lambda: len(hops(server, (first, second), "allowed")) == 20, timeout=60)
    assert hops(server, (first, second), "allowed") == list(range(1, 21))
    assert _records(server, dest) == []


def test_a_synchronous_call_deep_in_a_chain_is_refused(
    lam: Any, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(lam, name)
    # What botocore does inside a function: copy _X_AMZN_TRACE_ID into X-Amzn-Trace-Id.
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "caller")
    monkeypatch.setenv(
        "_X_AMZN_TRACE_ID", "Root=1-5f84c7a1-0123456789abcdef01234567;Lineage=0badc0de:15"
    )
    assert lam.invoke(FunctionName=name, Payload=b"{}")["StatusCode"] == 200
    monkeypatch.setenv(
        "_X_AMZN_TRACE_ID", "Root=1-5f84c7a1-0123456789abcdef01234567;Lineage=0badc0de:16"
    )
    with pytest.raises(lam.exceptions.RecursiveInvocationException) as exc:
        lam.invoke(FunctionName=name, Payload=b"{}")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    lam.put_function_recursion_config(FunctionName=name, RecursiveLoop="Allow")
    assert lam.invoke(FunctionName=name, Payload=b"{}")["StatusCode"] == 200
    # The setting belongs to the function, not to a version or alias.
    with pytest.raises(lam.exceptions.ClientError):
        lam.get_function_recursion_config(FunctionName=f"{name}:1")


def _records(server: ServerProcess, dest: str) -> list[dict[str, Any]]:
    return [
        e for e in received_events(server, dest) if isinstance(e, dict) and "requestContext" in e
    ]
