"""Function URLs in ``RESPONSE_STREAM`` mode: the function's stream as the HTTP response.

A function that streams with the HTTP integration content type starts its body with a JSON
prelude (status code, headers, cookies) and eight NUL bytes; everything after them is the
response body, passed on as it arrives. Any other streamed content type is the body itself,
sent with status 200. A function that answers buffered gets the usual result mapping. An
error before the first byte is a 502; after it the body just ends, since the status is out.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from lambdalite.api.http_events import BAD_GATEWAY, HttpResponse, map_result
from lambdalite.control.streaming import StreamedInvocation

HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"
DELIMITER = b"\x00" * 8
MAX_PRELUDE = 64 * 1024  # AWS asks for the prelude in the first 16 KB; allow some slack


async def stream_response(streamed: StreamedInvocation) -> HttpResponse:
    chunks = streamed.chunks
    if not streamed.streamed:
        payload = b"".join([chunk async for chunk in chunks])
        if streamed.complete.get("ErrorCode"):
            return BAD_GATEWAY
        return map_result(payload)
    if streamed.content_type != HTTP_INTEGRATION:
        headers = [("content-type", streamed.content_type)]
        return HttpResponse(200, headers, b"", stream=chunks)
    head = bytearray()
    async for chunk in chunks:
        head += chunk
        end = head.find(DELIMITER)
        if end >= 0:
            response = _from_prelude(bytes(head[:end]))
            if response is None:
                await _drain(chunks)
                return BAD_GATEWAY
            response.body = bytes(head[end + len(DELIMITER) :])
            response.stream = chunks
            return response
        if len(head) > MAX_PRELUDE:
            break
    await _drain(chunks)
    return BAD_GATEWAY


def _from_prelude(text: bytes) -> HttpResponse | None:
    try:
        prelude = json.loads(text) if text.strip() else {}
        if not isinstance(prelude, dict):
            return None
        status = int(prelude.get("statusCode") or 200)
        headers = [(str(k), str(v)) for k, v in (prelude.get("headers") or {}).items()]
        cookies = [str(c) for c in (prelude.get("cookies") or [])]
    except (TypeError, ValueError, AttributeError):
        return None
    if not 100 <= status <= 599:
        return None
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("content-type", "application/octet-stream"))
    headers += [("set-cookie", c) for c in cookies]
    return HttpResponse(status, headers, b"")


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Give up on a stream: the function runs to its end unheard (see control.streaming)."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
        return
    async for _ in chunks:
        pass
