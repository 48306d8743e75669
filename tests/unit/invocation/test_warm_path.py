"""The Runtime API's warm path: a parked /next, waiting for an answer, and write order."""

from __future__ import annotations

import asyncio
import json
import os
import socket

from lambdalite.invocation.runtime_api import RuntimeApi

from .conftest import run_async
from .test_runtime_api import NEXT, RawClient, event

RESPONSE = "/2018-06-01/runtime/invocation/req-1/response"


@run_async
async def test_the_answer_wakes_the_invocation_before_the_runtime_gets_its_202() -> None:
    api = RuntimeApi("127.0.0.1")
    client = await RawClient.connect(await api.start())
    exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    order: list[str] = []
    try:
        parked = asyncio.ensure_future(client.request("GET", NEXT))
        await asyncio.wait_for(api.ready, 5)
        outcome = api.submit(event())

        async def invocation() -> None:
            await api.wait_answer(outcome, exited, 5)
            # Woken by the answer, before the server has written anything back to the runtime.
            order.append("woken" if not _readable(client) else "202 already sent")

        waiting = asyncio.ensure_future(invocation())
        status, headers, _ = await asyncio.wait_for(parked, 5)
        assert (status, headers["lambda-runtime-aws-request-id"]) == (200, "req-1")
        status, _, body = await client.request("POST", RESPONSE, b'"ok"')
        order.append("202")
        assert (status, json.loads(body)) == (202, {"status": "OK"})
        await asyncio.wait_for(waiting, 5)
        assert order == ["woken", "202"]
        assert outcome.result().body == b'"ok"'
    finally:
        client.close()
        await api.close()


def _readable(client: RawClient) -> bool:
    """Whether bytes from the server wait on the client's socket (a non-blocking peek)."""
    fd = client.writer.get_extra_info("socket").fileno()
    with socket.socket(fileno=os.dup(fd)) as sock:
        try:
            return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except BlockingIOError:
            return False


@run_async
async def test_an_event_submitted_before_next_is_waited_for_the_same_way() -> None:
    api = RuntimeApi("127.0.0.1")
    client = await RawClient.connect(await api.start())
    exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    try:
        outcome = api.submit(event())  # queued: the runtime has not asked yet
        waiting = asyncio.ensure_future(api.wait_answer(outcome, exited, 5))
        status, _, body = await client.request("GET", NEXT)
        assert (status, body) == (200, b'{"k": 1}')
        assert not waiting.done()
        status, _, _ = await client.request("POST", RESPONSE, b"{}")
        assert status == 202
        await asyncio.wait_for(waiting, 5)
        assert outcome.result().kind == "response"
    finally:
        client.close()
        await api.close()


@run_async
async def test_waiting_ends_at_the_timeout_or_when_the_runtime_exits() -> None:
    api = RuntimeApi("127.0.0.1")
    await api.start()
    loop = asyncio.get_running_loop()
    try:
        exited: asyncio.Future[int] = loop.create_future()
        outcome = api.submit(event())
        started = loop.time()
        await asyncio.wait_for(api.wait_answer(outcome, exited, 0.05), 5)
        assert loop.time() - started >= 0.04
        assert not outcome.done()

        loop.call_later(0.01, exited.set_result, 1)
        await asyncio.wait_for(api.wait_answer(outcome, exited, 30), 5)
        assert exited.done() and not outcome.done()
    finally:
        await api.close()


@run_async
async def test_a_runtime_that_hangs_up_in_next_leaves_the_event_queued() -> None:
    api = RuntimeApi("127.0.0.1")
    address = await api.start()
    first = await RawClient.connect(address)
    parked = asyncio.ensure_future(first.request("GET", NEXT))
    await asyncio.wait_for(api.ready, 5)
    await asyncio.sleep(0.05)  # the poll is parked on the server
    parked.cancel()
    first.close()
    await asyncio.sleep(0.05)  # the server notices the hang-up
    second = await RawClient.connect(address)
    try:
        api.submit(event())
        status, headers, _ = await asyncio.wait_for(second.request("GET", NEXT), 5)
        assert (status, headers["lambda-runtime-aws-request-id"]) == (200, "req-1")
    finally:
        second.close()
        await api.close()
