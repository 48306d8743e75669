"""External extensions (Extensions API 2020-01-01) from layers, with every runtime family and
both sandbox backends: registration, INVOKE and SHUTDOWN events, how they shape INIT, each
invocation's duration and the environment's end, and registration failures."""

from __future__ import annotations

import base64
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from lambdalite.runtimes.registry import NODE_RUNTIMES, RuntimeRegistry
from tests.e2e.customruntime import tutorial_package, zip_with_modes
from tests.e2e.harness import ROLE, ServerProcess, function_zip

BACKENDS = ["namespace", "process"] if os.geteuid() == 0 else ["process"]
NODE = [r for r in NODE_RUNTIMES if r in RuntimeRegistry().available()]
RUNTIMES = ["python3.11", "provided.al2023", *NODE[-1:]]
NODE_HANDLER = "exports.handler = async (event) => ({ node: true, event });\n"
KEEP_ALIVE = 3

# Registers for INVOKE and SHUTDOWN and logs each event; EXT_WORK_SECONDS of work after each
# INVOKE (the platform waits for it before the invocation ends).
LOGGER = r"""#!/bin/sh
set -eu
NAME=$(basename "$0")
API="http://${AWS_LAMBDA_RUNTIME_API}/2020-01-01/extension"
HEADERS=$(mktemp)
BODY=$(curl -sS -D "$HEADERS" -X POST "$API/register" \
    -H "Lambda-Extension-Name: $NAME" -d '{"events": ["INVOKE", "SHUTDOWN"]}')
ID=$(grep -Fi Lambda-Extension-Identifier "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
echo "[$NAME] INIT $BODY handler=${_HANDLER-hidden} api=${AWS_LAMBDA_RUNTIME_API:+set}"
while true; do
    EVENT=$(curl -sS "$API/event/next" -H "Lambda-Extension-Identifier: $ID")
    case "$EVENT" in
        *SHUTDOWN*)
            echo "[$NAME] SHUTDOWN $EVENT"
            exit 0
            ;;
        *)
            echo "[$NAME] INVOKE $EVENT"
            sleep "${EXT_WORK_SECONDS:-0}"
            ;;
    esac
done
"""

# Asks for an event type that does not exist: registration fails, the extension exits.
BAD_EVENTS = r"""#!/bin/sh
NAME=$(basename "$0")
API="http://${AWS_LAMBDA_RUNTIME_API}/2020-01-01/extension"
echo "[$NAME] register: $(curl -sS -X POST "$API/register" -H "Lambda-Extension-Name: $NAME" \
    -d '{"events": ["INVOKE", "BOGUS"]}')"
exit 1
"""

# Registers under a name that is not its file name.
WRONG_NAME = r"""#!/bin/sh
API="http://${AWS_LAMBDA_RUNTIME_API}/2020-01-01/extension"
echo "[wrong] register: $(curl -sS -X POST "$API/register" -H "Lambda-Extension-Name: not-my-name" \
    -d '{"events": ["INVOKE", "SHUTDOWN"]}')"
exit 1
"""

# Registers, then reports that it cannot initialize.
INIT_ERROR = r"""#!/bin/sh
NAME=$(basename "$0")
API="http://${AWS_LAMBDA_RUNTIME_API}/2020-01-01/extension"
HEADERS=$(mktemp)
curl -sS -o /dev/null -D "$HEADERS" -X POST "$API/register" -H "Lambda-Extension-Name: $NAME" \
    -d '{"events": ["INVOKE"]}'
ID=$(grep -Fi Lambda-Extension-Identifier "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
curl -sS -X POST "$API/init/error" -H "Lambda-Extension-Identifier: $ID" \
    -H "Lambda-Extension-Function-Error-Type: Extension.ConfigInvalid" \
    -d '{"errorMessage": "no configuration", "errorType": "ConfigInvalid"}'
exit 1
"""


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path_factory.mktemp("extensions"), sandbox=request.param, keep_alive=KEEP_ALIVE
    ).start()
    yield process
    assert process.stop() == 0, process.output()


@pytest.fixture(scope="module")
def lam(server: ServerProcess) -> Any:
    return server.client("lambda")


@pytest.fixture
def name() -> str:
    return f"fn-{uuid.uuid4().hex[:10]}"


def layer(lam: Any, name: str, extensions: dict[str, str]) -> str:
    files = {f"extensions/{n}": (script, 0o755) for n, script in extensions.items()}
    arn: str = lam.publish_layer_version(
        LayerName=f"ext-{name}", Content={"ZipFile": zip_with_modes(files)}
    )["LayerVersionArn"]
    return arn


def create(lam: Any, name: str, runtime: str, layers: list[str], **extra: Any) -> None:
    if runtime.startswith("provided"):
        code, handler = tutorial_package(), "function.handler"
    elif runtime.startswith("nodejs"):
        code, handler = zip_with_modes({"index.js": (NODE_HANDLER, 0o644)}), "index.handler"
    else:
        code, handler = function_zip("basic"), "app.handler"
    params: dict[str, Any] = {"Timeout": 5, **extra}
    lam.create_function(
        FunctionName=name,
        Runtime=runtime,
        Role=ROLE,
        Handler=handler,
        Code={"ZipFile": code},
        Layers=layers,
        **params,
    )


def stored_log(server: ServerProcess, name: str, wanted: str, timeout: float = 10) -> str:
    logs = server.client("logs")
    deadline = time.monotonic() + timeout
    while True:
        try:
            events = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
        except logs.exceptions.ResourceNotFoundException:  # nothing written yet
            events = []
        text = "\n".join(e["message"].rstrip("\n") for e in events)
        if wanted in text or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def position(text: str, needle: str) -> int:
    found = text.find(needle)
    assert found >= 0, f"{needle!r} not in:\n{text}"
    return found


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_extension_sees_init_invoke_and_shutdown(
    lam: Any, server: ServerProcess, name: str, runtime: str
) -> None:
    create(lam, name, runtime, [layer(lam, name, {"logger": LOGGER})])
    ids = []
    for n in range(2):
        response = lam.invoke(FunctionName=name, Payload=json.dumps({"n": n}).encode())
        body = json.loads(response["Payload"].read())
        assert "FunctionError" not in response, body
        ids.append(response["ResponseMetadata"]["RequestId"])
    # Idle past the keep-alive: the environment ends with SHUTDOWN.
    log = stored_log(server, name, "[logger] SHUTDOWN", timeout=KEEP_ALIVE + 15)
    init = position(log, "[logger] INIT ")
    ready = position(log, "EXTENSION\tName: logger\tState: Ready\tEvents: [INVOKE, SHUTDOWN]")
    first = position(log, '[logger] INVOKE {"eventType": "INVOKE"')
    invokes = [position(log, f'"requestId": "{request_id}"') for request_id in ids]
    shutdown = position(log, "[logger] SHUTDOWN ")
    assert init < ready < first <= invokes[0] < invokes[1] < shutdown
    assert position(log, f"START RequestId: {ids[0]}") < invokes[0]
    assert invokes[0] < position(log, f"END RequestId: {ids[0]}")
    registered = json.loads(re.search(r"\[logger\] INIT (\{.*?\}) ", log)[1])  # type: ignore[index]
    assert registered["functionName"] == name and registered["functionVersion"] == "$LATEST"
    assert "handler" in registered
    # Extensions get the function's environment minus the "_"-prefixed variables.
    assert "handler=hidden api=set" in log
    invoke_event = json.loads(log[first + len("[logger] INVOKE ") :].splitlines()[0])
    assert invoke_event["invokedFunctionArn"].endswith(f":function:{name}")
    assert invoke_event["tracing"]["type"] == "X-Amzn-Trace-Id"
    assert invoke_event["deadlineMs"] > time.time() * 1000 - 60_000
    shutdown_event = json.loads(log[shutdown + len("[logger] SHUTDOWN ") :].splitlines()[0])
    assert shutdown_event["eventType"] == "SHUTDOWN"
    assert shutdown_event["shutdownReason"] == "spindown"
    assert shutdown_event["deadlineMs"] > time.time() * 1000 - 60_000


def test_invocation_waits_for_the_extension(lam: Any, name: str) -> None:
    create(
        lam,
        name,
        "python3.11",
        [layer(lam, name, {"logger": LOGGER})],
        Environment={"Variables": {"EXT_WORK_SECONDS": "0.6"}},
    )
    lam.invoke(FunctionName=name, Payload=b"{}")  # cold start
    response = lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    report = base64.b64decode(response["LogResult"]).decode()
    duration = float(re.search(r"REPORT RequestId: \S+\tDuration: ([\d.]+) ms", report)[1])  # type: ignore[index]
    assert duration >= 600, report
    assert "[logger] INVOKE" in report


def test_runtime_starts_after_extensions_registered(
    lam: Any, server: ServerProcess, name: str
) -> None:
    slow = LOGGER.replace(
        "HEADERS=$(mktemp)\n", 'HEADERS=$(mktemp)\nsleep 0.5\necho "[$NAME] registering"\n', 1
    )
    create(lam, name, "provided.al2023", [layer(lam, name, {"slow": slow})])
    response = lam.invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in response, response["Payload"].read()
    log = stored_log(server, name, "EXTENSION\tName: slow")
    assert position(log, "[slow] registering") < position(log, "bootstrap ready")
    assert position(log, "bootstrap ready") < position(log, "EXTENSION\tName: slow")


def test_timeout_resets_with_a_timeout_shutdown(lam: Any, server: ServerProcess, name: str) -> None:
    create(lam, name, "python3.11", [layer(lam, name, {"logger": LOGGER})], Timeout=1)
    payload = json.dumps({"action": "sleep", "seconds": 3}).encode()
    response = lam.invoke(FunctionName=name, Payload=payload)
    assert json.loads(response["Payload"].read())["errorType"] == "Sandbox.Timedout"
    log = stored_log(server, name, "[logger] SHUTDOWN")
    assert '"shutdownReason": "timeout"' in log
    assert position(log, "[logger] INVOKE") < position(log, "[logger] SHUTDOWN")
    again = lam.invoke(FunctionName=name, Payload=b"{}")  # a fresh environment
    assert "FunctionError" not in again


def test_extensions_stop_with_the_server(tmp_path: Any) -> None:
    process = ServerProcess(tmp_path / "data").start()
    try:
        lam = process.client("lambda")
        name = f"fn-{uuid.uuid4().hex[:10]}"
        create(lam, name, "python3.11", [layer(lam, name, {"logger": LOGGER})])
        assert "FunctionError" not in lam.invoke(FunctionName=name, Payload=b"{}")
    finally:
        assert process.stop() == 0, process.output()
    restarted = ServerProcess(tmp_path / "data").start()
    try:
        log = stored_log(restarted, name, "[logger] SHUTDOWN")
        assert '"shutdownReason": "spindown"' in log
        assert position(log, "[logger] INVOKE") < position(log, "[logger] SHUTDOWN")
    finally:
        assert restarted.stop() == 0


@pytest.mark.parametrize(
    ("script", "error_type", "said"),
    [
        (BAD_EVENTS, "Extension.Crash", "Extension.InvalidEventType"),
        (WRONG_NAME, "Extension.Crash", "Extension.InvalidEventType"),
        (INIT_ERROR, "Extension.ConfigInvalid", '{"status":"OK"}'),
    ],
    ids=["bad-events", "wrong-name", "init-error"],
)
def test_failing_extension_fails_init(
    lam: Any, server: ServerProcess, name: str, script: str, error_type: str, said: str
) -> None:
    create(lam, name, "python3.11", [layer(lam, name, {"broken": script})])
    response = lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    body = json.loads(response["Payload"].read())
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == error_type, body
    assert body["errorMessage"].startswith("Extension broken ")
    log = stored_log(server, name, f"Status: error\tError Type: {error_type}")
    assert f"Status: error\tError Type: {error_type}" in log
    assert said in log
