"""The Runtime API server, spoken to over real sockets like a runtime would."""

from __future__ import annotations

import asyncio
import json
import time

from lambdalite.invocation.runtime_api import MAX_RESPONSE_BYTES, RuntimeApi
from lambdalite.invocation.runtime_events import Event, normalize_error_type

from .conftest import run_async

NEXT = "/2018-06-01/runtime/invocation/next"


class RawClient:
    """A persistent HTTP/1.1 connection that exposes exactly what came over the wire."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, address: str) -> RawClient:
        host, port = address.rsplit(":", 1)
        return cls(*await asyncio.open_connection(host, int(port)))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_response(self) -> tuple[int, dict[str, str], bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        lines = [f"{method} {path} HTTP/1.1", "Host: x"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return await self.read_response()

    def close(self) -> None:
        self.writer.close()


def event(request_id: str = "req-1", **kw: object) -> Event:
    values: dict[object, object] = {
        "request_id": request_id,
        "payload": b'{"k": 1}',
        "deadline_ms": int(time.time() * 1000) + 3000,
        "invoked_arn": "arn:aws:lambda:us-east-1:000000000000:function:fn:live",
        "trace_id": "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0",
    }
    values.update(kw)
    return Event(**values)  # type: ignore[arg-type]


def error_of(body: bytes) -> tuple[str, str]:
    decoded = json.loads(body)
    assert set(decoded) == {"errorMessage", "errorType"}
    return decoded["errorType"], decoded["errorMessage"]


@run_async
async def test_next_long_polls_and_carries_the_invocation_headers() -> None:
    api = RuntimeApi("127.0.0.1")
    address = await api.start()
    client = await RawClient.connect(address)
    try:
        pending = asyncio.ensure_future(client.request("GET", NEXT))
        await asyncio.wait_for(api.ready, 5)
        assert not pending.done()  # nothing to hand out yet: the call blocks
        ev = event()
        outcome = api.submit(ev)
        status, headers, body = await asyncio.wait_for(pending, 5)
        assert status == 200
        assert body == b'{"k": 1}'
        assert headers["lambda-runtime-aws-request-id"] == "req-1"
        assert headers["lambda-runtime-deadline-ms"] == str(ev.deadline_ms)
        assert headers["lambda-runtime-invoked-function-arn"].endswith(":fn:live")
        assert headers["lambda-runtime-trace-id"].startswith("Root=1-")
        assert headers["content-type"] == "application/json"
        assert "lambda-runtime-client-context" not in headers
        assert "lambda-runtime-cognito-identity" not in headers

        status, _, body = await client.request(
            "POST",
            "/2018-06-01/runtime/invocation/req-1/response",
            b'"ok"',
            {"Content-Type": "text/plain"},
        )
        assert (status, json.loads(body)) == (202, {"status": "OK"})
        result = await outcome
        assert (result.kind, result.body, result.content_type) == (
            "response",
            b'"ok"',
            "text/plain",
        )

        # The same id again, or an unknown one: InvalidRequestID.
        for rid in ("req-1", "nope"):
            status, _, body = await client.request(
                "POST", f"/2018-06-01/runtime/invocation/{rid}/response", b"{}"
            )
            assert status == 400 and error_of(body)[0] == "InvalidRequestID"
    finally:
        client.close()
        await api.close()


@run_async
async def test_client_context_and_cognito_identity_only_when_present() -> None:
    api = RuntimeApi("127.0.0.1")
    client = await RawClient.connect(await api.start())
    try:
        api.submit(
            event(
                client_context='{"custom":\n{"a":"b"}}',
                cognito_identity='{"cognitoIdentityId":"i"}',
            )
        )
        status, headers, _ = await client.request("GET", NEXT)
        assert status == 200
        assert json.loads(headers["lambda-runtime-client-context"]) == {"custom": {"a": "b"}}
        assert headers["lambda-runtime-cognito-identity"] == '{"cognitoIdentityId":"i"}'
    finally:
        client.close()
        await api.close()


@run_async
async def test_state_errors() -> None:
    api = RuntimeApi("127.0.0.1")
    client = await RawClient.connect(await api.start())
    try:
        # Before the first /next nothing can be answered.
        status, _, body = await client.request(
            "POST", "/2018-06-01/runtime/invocation/x/response", b"{}"
        )
        assert status == 403 and error_of(body)[0] == "InvalidStateTransition"
        api.submit(event("r1"))
        status, _, _ = await client.request("GET", NEXT)
        assert status == 200
        # INIT is over: init/error is refused, and /next before answering r1 too.
        status, _, body = await client.request("POST", "/2018-06-01/runtime/init/error", b"{}")
        assert status == 403 and error_of(body)[0] == "InvalidStateTransition"
        status, _, body = await client.request("GET", NEXT)
        assert status == 403 and error_of(body)[0] == "InvalidStateTransition"
        status, _, body = await client.request("GET", "/2018-06-01/runtime/nothing")
        assert status == 404 and error_of(body)[0] == "NotFound"
        status, _, body = await client.request("GET", "/2018-06-01/runtime/invocation/r1/response")
        assert status == 405
    finally:
        client.close()
        await api.close()


@run_async
async def test_error_type_from_header_or_body() -> None:
    api = RuntimeApi("127.0.0.1")
    client = await RawClient.connect(await api.start())
    try:
        for rid, headers, body, expected in [
            (
                "a",
                {"Lambda-Runtime-Function-Error-Type": "Runtime.NoSuchHandler"},
                b"{}",
                "Runtime.NoSuchHandler",
            ),
            (
                "b",
                {"Lambda-Runtime-Function-Error-Type": "Function.oops"},
                b"{}",
                "Function.Unknown",
            ),
            ("c", {}, b'{"errorMessage":"boom","errorType":"ValueError"}', "ValueError"),
        ]:
            outcome = api.submit(event(rid))
            status, _, _ = await client.request("GET", NEXT)
            assert status == 200
            status, _, reply = await client.request(
                "POST", f"/2018-06-01/runtime/invocation/{rid}/error", body, headers
            )
            assert (status, json.loads(reply)) == (202, {"status": "OK"})
            result = await outcome
            assert (result.kind, result.error_type, result.body) == ("error", expected, body)
    finally:
        client.close()
        await api.close()


def test_normalize_error_type() -> None:
    assert normalize_error_type("Runtime.ImportModuleError", b"") == "Runtime.ImportModuleError"
    assert normalize_error_type("Function.Custom1", b"") == "Function.Unknown"
    assert normalize_error_type("ValueError", b"") == "Runtime.Unknown"
    assert normalize_error_type(None, b'{"errorType":"KeyError"}') == "KeyError"
    assert normalize_error_type(None, b"not json") == "Runtime.Unknown"
    assert normalize_error_type(None, b"[1]") == "Runtime.Unknown"


@run_async
async def test_init_error_is_accepted_once_during_init() -> None:
    api = RuntimeApi("127.0.0.1")
    client = await RawClient.connect(await api.start())
    try:
        body = b'{"errorMessage":"no","errorType":"Runtime.HandlerNotFound"}'
        status, _, reply = await client.request(
            "POST",
            "/2018-06-01/runtime/init/error",
            body,
            {"Lambda-Runtime-Function-Error-Type": "Runtime.HandlerNotFound"},
        )
        assert (status, json.loads(reply)) == (202, {"status": "OK"})
        failure = await api.init_failed
        assert (failure.error_type, failure.body) == ("Runtime.HandlerNotFound", body)
        status, _, _ = await client.request("POST", "/2018-06-01/runtime/init/error", body)
        assert status == 403
    finally:
        client.close()
        await api.close()


@run_async
async def test_oversized_response_is_refused_with_413() -> None:
    api = RuntimeApi("127.0.0.1")
    client = await RawClient.connect(await api.start())
    try:
        outcome = api.submit(event("big"))
        await client.request("GET", NEXT)
        status, _, body = await client.request(
            "POST", "/2018-06-01/runtime/invocation/big/response", b"x" * (MAX_RESPONSE_BYTES + 1)
        )
        assert status == 413
        assert error_of(body) == (
            "RequestEntityTooLarge",
            "Exceeded maximum allowed payload size (6291556 bytes).",
        )
        assert (await outcome).kind == "too_large"
        # The connection is still usable, and exactly the limit is fine.
        outcome = api.submit(event("edge"))
        await client.request("GET", NEXT)
        status, _, _ = await client.request(
            "POST", "/2018-06-01/runtime/invocation/edge/response", b"y" * MAX_RESPONSE_BYTES
        )
        assert status == 202
        assert len((await outcome).body) == MAX_RESPONSE_BYTES
    finally:
        client.close()
        await api.close()


@run_async
async def test_expect_continue_and_chunked_body() -> None:
    api = RuntimeApi("127.0.0.1")
    client = await RawClient.connect(await api.start())
    try:
        outcome = api.submit(event("c1"))
        await client.request("GET", NEXT)
        head = (
            "POST /2018-06-01/runtime/invocation/c1/response HTTP/1.1\r\nHost: x\r\n"
            "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
        )
        await client.send(head.encode())
        interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        await client.send(b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        status, _, _ = await client.read_response()
        assert status == 202
        assert (await outcome).body == b"hello world"
    finally:
        client.close()
        await api.close()


@run_async
async def test_closing_drops_a_blocked_next_call() -> None:
    api = RuntimeApi("127.0.0.1")
    client = await RawClient.connect(await api.start())
    pending = asyncio.ensure_future(client.request("GET", NEXT))
    await asyncio.wait_for(api.ready, 5)
    await asyncio.wait_for(api.close(), 5)
    done, _ = await asyncio.wait([pending], timeout=5)
    assert done  # the client saw the connection end instead of hanging
    client.close()
