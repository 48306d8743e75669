"""InvokeWithResponseStream: the result delivered as a stream of chunks.

The invocation runs as a task whose streamed response (a runtime posting in streaming mode)
is fed into a queue as the bytes arrive, so the caller sees them while the function is still
running. A runtime that answers buffered produces a single chunk. Errors, also those a runtime
reports mid-stream through trailers, go into the completion event only, and the HTTP status
stays 200, as AWS does for streamed invocations. Errors found before the function runs (no such
function, throttling, bad payload) are raised before any part of the stream is produced.

Two of AWS's rules apply on the way out. Bandwidth: the first 6 MB go out as fast as the caller
takes them, the rest at 2 MB/s at most (``Pacer``). A caller that goes away: the function is
not told and runs to completion (or its timeout), as on AWS; what it still writes is accepted
and dropped, so its writes never block, nothing piles up in memory, and the environment is
reused afterwards as usual (the consumer closing ``chunks`` early is what marks this).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
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


MB = 1024 * 1024
BURST_BYTES = 6 * MB  # sent unpaced
PACED_RATE = 2 * MB  # bytes per second after the burst
_PACED_PIECE = 128 * 1024  # paced bytes go out in pieces this size at most, for an even rate


class QueueSink:
    """Collects a streamed response into a queue; ``None`` marks the invocation's end.

    Once ``abandon``ed (nobody reads any more) it drops what it holds and all later writes.
    ``cut`` is called when the stream passes its size limit: an empty chunk queued after the
    last one that fitted tells the reader to end the stream there.
    """

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.content_type = "application/octet-stream"
        self.abandoned = False
        self.cut_at: int | None = None

    def begin(self, content_type: str) -> None:
        self.content_type = content_type

    def write(self, data: bytes) -> None:
        if not self.abandoned:
            self.queue.put_nowait(data)

    def cut(self, limit: int) -> None:
        self.cut_at = limit
        self.write(b"")

    def abandon(self) -> None:
        self.abandoned = True
        while not self.queue.empty():
            self.queue.get_nowait()


class Pacer:
    """AWS's streaming bandwidth rule: ``burst`` bytes at any speed, then at most ``rate``
    bytes a second. A pause earns no credit: each byte past the burst is due ``1/rate``
    seconds after the previous one or after the moment it is offered, whichever is later."""

    def __init__(
        self,
        burst: int = BURST_BYTES,
        rate: float = PACED_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.rate = rate
        self.clock = clock
        self.sent = 0
        self.free_at = 0.0  # when the bytes paced so far have had their time
        self.waited = 0.0  # seconds spent waiting, for the record

    def pieces(self, chunk: bytes) -> Iterator[bytes]:
        """``chunk`` cut at the end of the burst and into small pieces after it."""
        start = 0
        if self.sent < self.burst:
            start = min(len(chunk), self.burst - self.sent)
            if start:
                yield chunk if start == len(chunk) else chunk[:start]
        for offset in range(start, len(chunk), _PACED_PIECE):
            yield chunk[offset : offset + _PACED_PIECE]

    def delay(self, size: int) -> float:
        """Seconds to wait before sending ``size`` more bytes (0 within the burst)."""
        paced = min(size, self.sent + size - self.burst)
        self.sent += size
        if paced <= 0:
            return 0.0
        now = self.clock()
        self.free_at = max(self.free_at, now) + paced / self.rate
        wait = self.free_at - now
        self.waited += wait
        return wait


class StreamingService:
    def __init__(
        self, invocations: InvokeService, burst: int = BURST_BYTES, rate: float = PACED_RATE
    ) -> None:
        self.invocations = invocations
        self.burst = burst
        self.rate = rate

    async def invoke_with_response_stream(
        self, params: dict[str, Any], request_id: str, trace: str | None
    ) -> StreamedInvocation:
        kind = params.get("InvocationType") or "RequestResponse"
        call = dict(params, InvocationType=kind)
        sink = QueueSink()
        queue = sink.queue
        task = asyncio.ensure_future(self.invocations.invoke(call, request_id, trace, sink=sink))
        task.add_done_callback(lambda _: queue.put_nowait(None))
        task.add_done_callback(_retrieve)  # an abandoned stream's outcome is read by nobody
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
            pacer = Pacer(self.burst, self.rate)
            finished = False
            try:
                chunk: bytes | None = first
                while chunk is not None:
                    if not chunk and sink.cut_at is not None:
                        # Over the limit: the caller's stream ends with the error now, and
                        # the function runs on unheard (it gets a 413 when it finishes).
                        streamed.complete.update(too_large(sink.cut_at))
                        sink.abandon()
                        return
                    for piece in pacer.pieces(chunk):
                        wait = pacer.delay(len(piece))
                        if wait:
                            await asyncio.sleep(wait)
                        yield piece
                    chunk = await queue.get()
                finished = True
            finally:
                if not finished:
                    sink.abandon()  # the caller is gone: the function runs on unheard
            result = task.result()
            complete, rest = completion(result)
            streamed.complete.update(complete)
            if rest:
                yield rest

        streamed.chunks = stream()
        resolved, _ = self.invocations.resolve(params["FunctionName"], params.get("Qualifier"))
        streamed.executed_version = str(resolved.version)
        return streamed


def too_large(limit: int) -> dict[str, Any]:
    """The InvokeComplete fields of a stream cut off at ``limit`` bytes."""
    message = f"Response payload size exceeded maximum allowed payload size ({limit} bytes)."
    return {"ErrorCode": "Function.ResponseSizeTooLarge", "ErrorDetails": message}


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator
