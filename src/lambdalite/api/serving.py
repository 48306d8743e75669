"""The HTTP protocol the API is served with: uvicorn's httptools protocol, one send per reply.

uvicorn writes a response's head and its body with two transport writes, which on an idle
connection are two ``send`` calls and two wake-ups of the client. For the small replies that
make up most of the API (an Invoke result, a configuration document) the head is held back
until the body's first write, within the same turn of the event loop, and both leave
together. A head that no body follows in that turn (a HEAD request, a stream whose first
chunk is not ready) is written on the next turn, so nothing waits for a body that may never
come; a head sent through ``send_whole`` is known to be followed by its body and waits for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Bodies up to this size are copied behind the head; larger ones are written after it.
_JOIN_LIMIT = 64 * 1024
# Set while ``send_whole`` sends a head whose body is sent right after it, by the same task.
_BODY_FOLLOWS: ContextVar[bool] = ContextVar("lambdalite_body_follows", default=False)


async def send_whole(
    send: Callable[[dict[str, Any]], Awaitable[None]],
    start: dict[str, Any],
    body: dict[str, Any],
) -> None:
    """Send a buffered response: its head, then its whole body at once.

    The head then waits for the body without a flush being scheduled for it, which saves a
    pass of the event loop per response. Not for HEAD requests, whose body is never written.
    """
    token = _BODY_FOLLOWS.set(True)
    try:
        await send(start)
    finally:
        _BODY_FOLLOWS.reset(token)
    await send(body)


class _CoalescingTransport:
    """A transport that joins a held response head to the write that follows it."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if len(data) <= _JOIN_LIMIT:
                self._transport.write(head + bytes(data))
                return
            self._transport.write(head)
        elif _is_response_head(data):
            self._head = bytes(data)
            if not _BODY_FOLLOWS.get():
                self._loop.call_soon(self._flush)
            return
        self._transport.write(data)

    def _flush(self) -> None:
        head, self._head = self._head, None
        if head is not None and not self._transport.is_closing():
            self._transport.write(head)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _is_response_head(data: bytes | bytearray | memoryview) -> bool:
    raw = bytes(data[:9])
    return raw == b"HTTP/1.1 " and bytes(data[-4:]) == b"\r\n\r\n"


class CoalescingHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through ``_CoalescingTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        coalescing: Any = _CoalescingTransport(transport, asyncio.get_running_loop())
        self.transport = coalescing
