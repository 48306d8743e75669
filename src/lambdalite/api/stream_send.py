"""Sending a streamed response body over ASGI while watching for the caller leaving.

An ASGI server keeps accepting ``send`` calls after the client has gone (they are silently
dropped), so a streamed body would otherwise be pulled, and paced, to its end for nobody. Here
the body is sent by one task while another waits for ``http.disconnect``; when that comes
first the sending stops and the body iterator is closed, which tells its producer that nobody
reads any more (see ``control.streaming``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]

log = logging.getLogger(__name__)


async def forward(chunks: AsyncIterable[bytes], send: Send, receive: Receive, what: str) -> None:
    """Send ``chunks`` as body parts (the response start is already out) and end the body;
    ``what`` names the response in the log should the stream fail."""
    pump = asyncio.ensure_future(_pump(chunks, send, what))
    gone = asyncio.ensure_future(_disconnect(receive))
    try:
        await asyncio.wait((pump, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pump, gone):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
    await send({"type": "http.response.body", "body": b""})  # dropped if the caller is gone


async def _pump(chunks: AsyncIterable[bytes], send: Send, what: str) -> None:
    try:
        async for chunk in chunks:
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except Exception:
        # The status is already out: all that is left is to end the body.
        log.exception("%s: response stream failed", what)


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
