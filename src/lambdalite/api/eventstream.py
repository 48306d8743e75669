"""AWS event-stream framing (``application/vnd.amazon.eventstream``).

Each message: total length and headers length (big-endian uint32), a CRC32 of those eight
bytes, the headers, the payload, and a CRC32 of everything before it. Headers here are all
strings (type 7): name length (uint8), name, type, value length (uint16), value.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

CONTENT_TYPE = "application/vnd.amazon.eventstream"


def _headers(values: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in values.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack("!B", len(raw_name)) + raw_name
        out += struct.pack("!BH", 7, len(raw_value)) + raw_value
    return bytes(out)


def message(headers: dict[str, str], payload: bytes) -> bytes:
    head = _headers(headers)
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack("!II", total, len(head))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    body = prelude + head + payload
    return body + struct.pack("!I", zlib.crc32(body))


def event(event_type: str, payload: bytes, content_type: str) -> bytes:
    return message(
        {":event-type": event_type, ":content-type": content_type, ":message-type": "event"},
        payload,
    )


def payload_chunk(data: bytes) -> bytes:
    return event("PayloadChunk", data, "application/octet-stream")


def invoke_complete(fields: dict[str, Any]) -> bytes:
    return event("InvokeComplete", json.dumps(fields).encode(), "application/json")


async def frames(chunks: AsyncIterator[bytes], complete: dict[str, Any]) -> AsyncIterator[bytes]:
    """PayloadChunk events for ``chunks``, then InvokeComplete with ``complete``'s fields
    (which the producer may fill in while streaming)."""
    try:
        async for chunk in chunks:
            if chunk:
                yield payload_chunk(chunk)
    finally:
        # Closed early (the caller left): close the source too, so its producer learns of it.
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    yield invoke_complete(complete)
