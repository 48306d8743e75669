"""InvokeWithResponseStream: the result delivered as a stream of chunks.

The invocation runs as a task whose streamed response (a runtime posting in streaming mode)
is fed into a queue as the bytes arrive, so the caller sees them while the function is still
running. A runtime that answers buffered produces a single chunk. Errors, also those a runtime
reports mid-stream through trailers, go into the completion event only, and the HTTP status
stays 200, as AWS does for streamed invocations. Errors found before the function runs (no such
function, throttling, bad payload) are raised before any part of the stream is produced.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from lambdalite.control.invoke import InvokeService


@dataclass
class StreamedInvocation:
    executed_version: str
    chunks: AsyncIterator[bytes]
    # Filled in by the time ``chunks`` is exhausted: ErrorCode, ErrorDetails, LogResult.
    complete: dict[str, Any] = field(default_factory=dict)
    content_type: str = "application/octet-stream"
    streamed: bool = False  # the runtime streamed its response (else one buffered answer)


def completion(result: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The InvokeComplete fields of a finished invocation and the payload still to send."""
    complete: dict[str, Any] = {}
    if result.get("LogResult"):
        complete["LogResult"] = result["LogResult"]
    payload: bytes = result.get("Payload") or b""
    if result.get("FunctionError"):
        try:
            error = json.loads(payload)
        except ValueError:
            error = {}
        if not isinstance(error, dict):
            error = {}
        complete["ErrorCode"] = str(error.get("errorType") or "Unhandled")
        complete["ErrorDetails"] = str(
            error.get("errorMessage") or payload.decode(errors="replace")
        )
        payload = b""
    return complete, payload


class QueueSink:
    """Collects a streamed response into a queue; ``None`` marks the invocation's end."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.content_type = "application/octet-stream"

    def begin(self, content_type: str) -> None:
        self.content_type = content_type

    def write(self, data: bytes) -> None:
        self.queue.put_nowait(data)


class StreamingService:
    def __init__(self, invocations: InvokeService) -> None:
        self.invocations = invocations

    async def invoke_with_response_stream(
        self, params: dict[str, Any], request_id: str, trace: str | None
    ) -> StreamedInvocation:
        kind = params.get("InvocationType") or "RequestResponse"
        call = dict(params, InvocationType=kind)
        sink = QueueSink()
        queue = sink.queue
        task = asyncio.ensure_future(self.invocations.invoke(call, request_id, trace, sink=sink))
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            first = await queue.get()
        except BaseException:
            task.cancel()
            raise
        if first is None:
            # Finished without streaming: a buffered answer, an error, or a refusal (raised).
            result = task.result()
            complete, payload = completion(result)

            async def whole() -> AsyncIterator[bytes]:
                if payload:
                    yield payload

            return StreamedInvocation(
                executed_version=str(result.get("ExecutedVersion", "")),
                chunks=whole(),
                complete=complete,
                content_type="application/json" if payload else "application/octet-stream",
            )
        streamed = StreamedInvocation(
            executed_version="", chunks=_empty(), content_type=sink.content_type, streamed=True
        )

        async def stream() -> AsyncIterator[bytes]:
            chunk: bytes | None = first
            while chunk is not None:
                yield chunk
                chunk = await queue.get()
            result = task.result()
            complete, rest = completion(result)
            streamed.complete.update(complete)
            if rest:
                yield rest

        streamed.chunks = stream()
        resolved, _ = self.invocations.resolve(params["FunctionName"], params.get("Qualifier"))
        streamed.executed_version = str(resolved.version)
        return streamed


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator
