"""InvokeWithResponseStream: the result delivered as a stream of chunks.

Functions run buffered today (the Runtime API's streaming mode comes later), so a stream
carries the whole result as one chunk; errors go into the completion event only, and the
HTTP status stays 200, as AWS does for streamed invocations.
"""

from __future__ import annotations

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


class StreamingService:
    def __init__(self, invocations: InvokeService) -> None:
        self.invocations = invocations

    async def invoke_with_response_stream(
        self, params: dict[str, Any], request_id: str, trace: str | None
    ) -> StreamedInvocation:
        kind = params.get("InvocationType") or "RequestResponse"
        call = dict(params, InvocationType=kind)
        result = await self.invocations.invoke(call, request_id, trace)
        complete: dict[str, Any] = {}
        if result.get("LogResult"):
            complete["LogResult"] = result["LogResult"]
        payload: bytes = result.get("Payload") or b""
        if result.get("FunctionError"):
            try:
                error = json.loads(payload)
            except ValueError:
                error = {}
            complete["ErrorCode"] = str(error.get("errorType") or "Unhandled")
            complete["ErrorDetails"] = str(
                error.get("errorMessage") or payload.decode(errors="replace")
            )
            payload = b""

        async def chunks() -> AsyncIterator[bytes]:
            if payload:
                yield payload

        return StreamedInvocation(
            executed_version=str(result.get("ExecutedVersion", "")),
            chunks=chunks(),
            complete=complete,
            content_type="application/json" if payload else "application/octet-stream",
        )
