"""What passes between an invocation and its environment's Runtime API.

An ``Event`` is one invocation as ``/next`` hands it out (its headers included), an
``Outcome`` how the runtime answered it, an ``InitFailure`` how INIT failed; the Runtime API's
error documents and its reading of ``/error`` calls' error types are here too, shared with
the Extensions API.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field

from lambdalite.invocation.http11 import Response
from lambdalite.invocation.model import ResponseSink

_VALID_ERROR_TYPE = re.compile(r"(Runtime|Function)\.[A-Z][a-zA-Z]+")


@dataclass(frozen=True)
class Outcome:
    """How the runtime answered one event."""

    kind: str  # "response" | "error" | "too_large"
    body: bytes = b""
    content_type: str = "application/json"
    error_type: str | None = None

    def __init__(
        self,
        kind: str,
        body: bytes = b"",
        content_type: str = "application/json",
        error_type: str | None = None,
    ) -> None:
        # One per invocation: straight into the instance dict, as in platform_log.Report.
        fields = self.__dict__
        fields["kind"] = kind
        fields["body"] = body
        fields["content_type"] = content_type
        fields["error_type"] = error_type


@dataclass(frozen=True)
class InitFailure:
    error_type: str
    body: bytes


@dataclass(slots=True)
class Event:
    request_id: str
    payload: bytes
    deadline_ms: int
    invoked_arn: str
    trace_id: str
    client_context: str | None = None
    cognito_identity: str | None = None
    # Where a streamed response goes as it arrives; None collects it like a buffered one.
    sink: ResponseSink | None = None
    outcome: asyncio.Future[Outcome] = field(init=False)
    answered: bool = False
    streamed: int = 0  # bytes passed to ``sink``
    overflowed: bool = False  # the stream passed its limit; the rest was dropped

    def __post_init__(self) -> None:
        self.outcome = asyncio.get_running_loop().create_future()

    def headers(self) -> list[tuple[str, str]]:
        headers = [
            ("Lambda-Runtime-Aws-Request-Id", self.request_id),
            ("Lambda-Runtime-Deadline-Ms", str(self.deadline_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", self.invoked_arn),
            ("Lambda-Runtime-Trace-Id", self.trace_id),
        ]
        if self.client_context:
            headers.append(("Lambda-Runtime-Client-Context", _one_line(self.client_context)))
        if self.cognito_identity:
            headers.append(("Lambda-Runtime-Cognito-Identity", _one_line(self.cognito_identity)))
        return headers


def _one_line(text: str) -> str:
    # JSON never needs a raw line break, and one would end the header.
    return text.replace("\r", " ").replace("\n", " ")


def api_error(status: int, error_type: str, message: str) -> Response:
    body = json.dumps({"errorMessage": message, "errorType": error_type}).encode()
    return Response(status, body)


def normalize_error_type(header: str | None, body: bytes) -> str:
    """The error type of an ``/error`` call: from the header as the platform normalizes it,
    else (runtimes such as awslambdaric send no header) from the body's ``errorType``."""
    if header:
        if _VALID_ERROR_TYPE.fullmatch(header):
            return header
        return "Function.Unknown" if header.startswith("Function.") else "Runtime.Unknown"
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "Runtime.Unknown"
    if isinstance(decoded, dict) and isinstance(decoded.get("errorType"), str):
        return str(decoded["errorType"]) or "Runtime.Unknown"
    return "Runtime.Unknown"
