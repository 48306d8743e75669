"""The Extensions API on a real Runtime API listener, spoken to over sockets as extensions do:
registration rules and errors, INIT and INVOKE completion, SHUTDOWN, exit reports."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from lambdalite.invocation.extension_model import Extension, status_line
from lambdalite.invocation.extensions import MAX_EXTENSIONS, ExtensionsApi
from lambdalite.invocation.runtime_api import RuntimeApi
from lambdalite.invocation.runtime_events import Event

from .conftest import run_async
from .test_runtime_api import NEXT, RawClient

EXT = "/2020-01-01/extension"


async def started(launched: tuple[str, ...] = ("logger",)) -> tuple[RuntimeApi, list[str]]:
    api = RuntimeApi("127.0.0.1")
    lines: list[str] = []
    api.extensions = ExtensionsApi(
        api,
        launched,
        function_name="fn",
        version="$LATEST",
        handler="app.handler",
        account_id="123456789012",
        log_format="Text",
        emit=lines.append,
    )
    await api.start()
    return api, lines


async def register(
    api: RuntimeApi, name: str, events: list[str], **headers: str
) -> tuple[int, dict[str, str], Any]:
    client = await RawClient.connect(api.address)
    body = json.dumps({"events": events}).encode()
    status, head, raw = await client.request(
        "POST", f"{EXT}/register", body, {"Lambda-Extension-Name": name, **headers}
    )
    client.close()
    return status, head, json.loads(raw)


def event(request_id: str = "req-1") -> Event:
    return Event(request_id, b"{}", 1_700_000_000_000, "arn:aws:lambda:r:1:function:fn", "Root=1")


@run_async
async def test_register_answers_with_an_identifier_and_the_function() -> None:
    api, _ = await started()
    status, head, body = await register(
        api, "logger", ["INVOKE"], **{"Lambda-Extension-Accept-Feature": "accountId"}
    )
    assert status == 200
    uuid.UUID(head["lambda-extension-identifier"])
    assert body == {
        "functionName": "fn",
        "functionVersion": "$LATEST",
        "handler": "app.handler",
        "accountId": "123456789012",
    }
    await api.close()


@run_async
async def test_registration_errors() -> None:
    api, _ = await started(("logger",))
    assert (await register(api, "", ["INVOKE"]))[2]["errorType"] == "Extension.InvalidExtensionName"
    bogus = await register(api, "logger", ["INVOKE", "BOGUS"])
    assert (bogus[0], bogus[2]["errorType"]) == (403, "Extension.InvalidEventType")
    # A name that is no file of /opt/extensions is an internal extension: no SHUTDOWN for it.
    internal = await register(api, "not-a-file", ["SHUTDOWN"])
    assert internal[2]["errorType"] == "Extension.InvalidEventType"
    assert (await register(api, "not-a-file", ["INVOKE"]))[0] == 200
    assert (await register(api, "logger", ["INVOKE"]))[0] == 200
    again = await register(api, "logger", ["INVOKE"])
    assert again[2]["errorType"] == "Extension.InvalidExtensionState"
    for n in range(MAX_EXTENSIONS - 2):
        assert (await register(api, f"internal-{n}", []))[0] == 200
    too_many = await register(api, "one-too-many", [])
    assert too_many[2]["errorType"] == "Extension.TooManyExtensions"
    await api.close()


@run_async
async def test_identifier_errors() -> None:
    api, _ = await started()
    client = await RawClient.connect(api.address)
    for headers, error_type in [
        ({}, "Extension.MissingExtensionIdentifier"),
        ({"Lambda-Extension-Identifier": "nope"}, "Extension.InvalidExtensionIdentifier"),
        (
            {"Lambda-Extension-Identifier": str(uuid.uuid4())},
            "Extension.UnknownExtensionIdentifier",
        ),
    ]:
        status, _, body = await client.request("GET", f"{EXT}/event/next", b"", headers)
        assert (status, json.loads(body)["errorType"]) == (403, error_type)
    client.close()
    await api.close()


@run_async
async def test_init_waits_for_every_extension_and_invocations_for_subscribers() -> None:
    api, lines = await started(("logger",))
    _, head, _ = await register(api, "logger", ["INVOKE", "SHUTDOWN"])
    ident = {"Lambda-Extension-Identifier": head["lambda-extension-identifier"]}
    runtime = await RawClient.connect(api.address)
    extension = await RawClient.connect(api.address)
    runtime_next = asyncio.ensure_future(runtime.request("GET", NEXT))
    await asyncio.sleep(0.05)
    assert not api.ready.done()  # the runtime is waiting, the extension is not ready yet
    ext_next = asyncio.ensure_future(extension.request("GET", f"{EXT}/event/next", b"", ident))
    await asyncio.wait_for(asyncio.shield(api.ready), 2)
    assert lines == ["EXTENSION\tName: logger\tState: Ready\tEvents: [INVOKE, SHUTDOWN]"]
    done = api.submit(event())
    status, _, delivered = await asyncio.wait_for(ext_next, 2)
    invoke = json.loads(delivered)
    assert status == 200 and invoke["eventType"] == "INVOKE" and invoke["requestId"] == "req-1"
    assert invoke["tracing"] == {"type": "X-Amzn-Trace-Id", "value": "Root=1"}
    await asyncio.wait_for(runtime_next, 2)
    await runtime.request("POST", "/2018-06-01/runtime/invocation/req-1/response", b'"ok"')
    await asyncio.sleep(0.05)
    assert not done.done()  # the runtime answered; the extension has not asked for more
    ext_next = asyncio.ensure_future(extension.request("GET", f"{EXT}/event/next", b"", ident))
    outcome = await asyncio.wait_for(done, 2)
    assert outcome.kind == "response" and outcome.body == b'"ok"'
    # SHUTDOWN reaches the subscribed extension; it ends once the extension is done.
    assert api.extensions is not None
    shutdown = asyncio.ensure_future(api.extensions.shutdown())
    _, _, delivered = await asyncio.wait_for(ext_next, 2)
    assert json.loads(delivered)["shutdownReason"] == "spindown"
    api.extensions.exited("logger", 0)
    await asyncio.wait_for(shutdown, 1)
    runtime.close()
    extension.close()
    await api.close()


@run_async
async def test_init_error_and_early_exit_fail_init() -> None:
    api, lines = await started(("logger", "other"))
    _, head, _ = await register(api, "logger", ["INVOKE"])
    client = await RawClient.connect(api.address)
    status, _, _ = await client.request(
        "POST",
        f"{EXT}/init/error",
        json.dumps({"errorMessage": "bad config"}).encode(),
        {
            "Lambda-Extension-Identifier": head["lambda-extension-identifier"],
            "Lambda-Extension-Function-Error-Type": "Extension.BadConfig",
        },
    )
    assert status == 202
    failure = await asyncio.wait_for(asyncio.shield(api.init_failed), 1)
    assert failure.error_type == "Extension.BadConfig"
    assert json.loads(failure.body)["errorMessage"] == (
        "Extension logger reported an initialization error: bad config"
    )
    assert lines[-1] == (
        "Extension logger reported an initialization error: bad config\nExtension.BadConfig"
    )
    client.close()
    await api.close()

    api, _ = await started(("logger",))
    api.extensions.exited("logger", 127)  # type: ignore[union-attr]
    failure = await asyncio.wait_for(asyncio.shield(api.init_failed), 1)
    assert failure.error_type == "Extension.LaunchError"
    await api.close()


@run_async
async def test_output_filter_takes_exit_reports_out_of_the_log() -> None:
    api, _ = await started(("logger",))
    assert api.extensions is not None
    seen: list[str] = []
    on_line = api.extensions.output_filter("MARK", seen.append)
    on_line("plain output")
    on_line("no newline beforeMARK 3 logger")
    assert seen == ["plain output", "no newline before"]
    await asyncio.sleep(0)  # handled on the next loop turn, outside the output callback
    assert api.extensions.exits == {"logger": 3}
    assert api.init_failed.done() and api.init_failed.result().error_type == "Extension.Crash"
    await api.close()


@run_async
async def test_the_launcher_poll_ends_once_every_extension_registered() -> None:
    api, _ = await started(("a", "b"))
    launcher = await RawClient.connect(api.address)
    poll = asyncio.ensure_future(launcher.request("GET", f"{EXT}/lambdalite/registered"))
    assert (await register(api, "a", ["INVOKE"]))[0] == 200
    await asyncio.sleep(0.05)
    assert not poll.done()
    assert (await register(api, "b", []))[0] == 200
    status, _, _ = await asyncio.wait_for(poll, 2)
    assert status == 200
    launcher.close()
    await api.close()


def test_status_lines_in_both_log_formats() -> None:
    extension = Extension("logger", str(uuid.uuid4()), ("INVOKE", "SHUTDOWN"), True)
    assert status_line(extension, "Ready", "", as_json=False) == (
        "EXTENSION\tName: logger\tState: Ready\tEvents: [INVOKE, SHUTDOWN]"
    )
    record = json.loads(status_line(extension, "Failed", "Extension.Crash", as_json=True))
    assert record["type"] == "platform.extension"
    assert record["record"] == {
        "name": "logger",
        "state": "Failed",
        "events": ["INVOKE", "SHUTDOWN"],
        "errorType": "Extension.Crash",
    }
