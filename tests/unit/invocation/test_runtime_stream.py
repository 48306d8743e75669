"""Streaming-mode responses on the Runtime API: bytes reach the event's sink as they arrive."""

from __future__ import annotations

import asyncio
import base64
import json

from lambdalite.control.streaming import QueueSink, too_large
from lambdalite.invocation.runtime_api import RuntimeApi

from .conftest import run_async
from .test_runtime_api import NEXT, RawClient, error_of, event

HEAD = (
    "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: x\r\n"
    "Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n"
    "Content-Type: text/plain\r\n"
    "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n"
)


class Collect:
    """A response sink that keeps what it gets in a queue."""

    def __init__(self) -> None:
        self.content_type = ""
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def begin(self, content_type: str) -> None:
        self.content_type = content_type

    def write(self, data: bytes) -> None:
        self.queue.put_nowait(data)

    def received(self) -> list[bytes]:
        return [self.queue.get_nowait() for _ in range(self.queue.qsize())]


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@run_async
async def test_chunks_reach_the_sink_before_the_body_ends() -> None:
    api = RuntimeApi("127.0.0.1")
    client = await RawClient.connect(await api.start())
    sink = Collect()
    received = sink.queue
    try:
        outcome = api.submit(event("s1", sink=sink))
        await client.request("GET", NEXT)
        await client.send(HEAD.format(id="s1").encode() + chunk(b"one;"))
        assert await asyncio.wait_for(received.get(), 5) == b"one;"
        assert sink.content_type == "text/plain"
        assert not outcome.done()
        await client.send(chunk(b"two"))
        assert await asyncio.wait_for(received.get(), 5) == b"two"
        await client.send(b"0\r\n\r\n")
        status, _, _ = await client.read_response()
        assert status == 202
        answer = await outcome
        assert answer.kind == "response" and answer.body == b""
    finally:
        client.close()
        await api.close()


@run_async
async def test_error_trailers_after_streamed_bytes() -> None:
    api = RuntimeApi("127.0.0.1")
    client = await RawClient.connect(await api.start())
    sink = Collect()
    try:
        outcome = api.submit(event("s2", sink=sink))
        await client.request("GET", NEXT)
        document = json.dumps({"errorType": "Broke", "errorMessage": "mid"}).encode()
        trailers = (
            "0\r\nLambda-Runtime-Function-Error-Type: Function.Broke\r\n"
            f"Lambda-Runtime-Function-Error-Body: {base64.b64encode(document).decode()}\r\n\r\n"
        )
        await client.send(HEAD.format(id="s2").encode() + chunk(b"part") + trailers.encode())
        status, _, _ = await client.read_response()
        assert status == 202
        answer = await outcome
        assert sink.received() == [b"part"]
        assert answer.kind == "error" and answer.error_type == "Function.Broke"
        assert answer.body == document
    finally:
        client.close()
        await api.close()


@run_async
async def test_stream_over_the_cap_is_cut_off_with_413() -> None:
    api = RuntimeApi("127.0.0.1", max_stream=10)
    client = await RawClient.connect(await api.start())
    sink = Collect()
    try:
        outcome = api.submit(event("s3", sink=sink))
        await client.request("GET", NEXT)
        body = chunk(b"12345678") + chunk(b"9abc") + b"0\r\n\r\n"
        await client.send(HEAD.format(id="s3").encode() + body)
        status, _, answer_body = await client.read_response()
        assert status == 413
        assert error_of(answer_body) == (
            "RequestEntityTooLarge",
            "Exceeded maximum allowed payload size (10 bytes).",
        )
        assert sink.received() == [b"12345678"]
        assert (await outcome).kind == "too_large"
    finally:
        client.close()
        await api.close()


@run_async
async def test_without_a_sink_a_streamed_response_is_collected() -> None:
    api = RuntimeApi("127.0.0.1")
    client = await RawClient.connect(await api.start())
    try:
        outcome = api.submit(event("s4"))
        await client.request("GET", NEXT)
        body = chunk(b"all ") + chunk(b"at once") + b"0\r\n\r\n"
        await client.send(HEAD.format(id="s4").encode() + body)
        status, _, _ = await client.read_response()
        assert status == 202
        answer = await outcome
        assert answer.body == b"all at once" and answer.content_type == "text/plain"
    finally:
        client.close()
        await api.close()


@run_async
async def test_a_queue_sink_is_cut_at_the_limit_while_the_function_goes_on() -> None:
    api = RuntimeApi("127.0.0.1", max_stream=10)
    client = await RawClient.connect(await api.start())
    sink = QueueSink()
    try:
        outcome = api.submit(event("s5", sink=sink))
        await client.request("GET", NEXT)
        await client.send(HEAD.format(id="s5").encode() + chunk(b"12345678") + chunk(b"9abc"))
        # The reader learns of the cut at once, after the bytes that fitted ...
        assert await sink.queue.get() == b"12345678"
        assert await sink.queue.get() == b"" and sink.cut_at == 10
        assert too_large(10)["ErrorCode"] == "Function.ResponseSizeTooLarge"
        sink.abandon()
        # ... while the function may write on until it ends; it is then told 413.
        await client.send(chunk(b"more") + b"0\r\n\r\n")
        status, _, _ = await client.read_response()
        assert status == 413 and (await outcome).kind == "too_large"
        assert sink.queue.empty()
    finally:
        client.close()
        await api.close()
