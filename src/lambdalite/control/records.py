"""What an asynchronous invocation leaves behind: invocation records and dead letters.

An **invocation record** goes to an ``OnSuccess``/``OnFailure`` destination; it carries the
request and, when the function ran, its response. A **dead letter** goes to the function's
``DeadLetterConfig`` target: the original event as the body, with ``RequestID``,
``ErrorCode`` and ``ErrorMessage`` attributes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from lambdalite.invocation.model import InvokeResult

SUCCESS = "Success"
RETRIES_EXHAUSTED = "RetriesExhausted"
EVENT_AGE_EXCEEDED = "EventAgeExceeded"
ZERO_RESERVED = "ZeroReservedConcurrency"
RECURSIVE = "RecursiveInvocationException"

ERROR_MESSAGE_LIMIT = 1024


@dataclass(frozen=True)
class Outbound:
    """One message for a destination or dead-letter target."""

    kind: str  # "destination" or "dead-letter"
    source_arn: str  # the unqualified function ARN that produced it
    body: str  # JSON text
    success: bool = False
    # Dead letters only: message attributes as name → (DataType, StringValue).
    attributes: dict[str, tuple[str, str]] = field(default_factory=dict)


def _timestamp(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def invocation_record(
    *,
    request_id: str,
    function_arn: str,
    condition: str,
    invoke_count: int,
    payload: bytes,
    executed_version: str,
    response: InvokeResult | None,
    now: float,
) -> dict[str, Any]:
    """The record AWS sends to destinations; ``response`` is None when nothing ran."""
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": _timestamp(now),
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": _json_or_text(payload or b"{}"),
    }
    if response is not None:
        context: dict[str, Any] = {"statusCode": 200, "executedVersion": executed_version}
        if response.function_error:
            context["functionError"] = response.function_error
        record["responseContext"] = context
        record["responsePayload"] = _json_or_text(response.payload) if response.payload else None
    return record


def error_message(response: InvokeResult | None, fallback: str) -> str:
    """The ``errorMessage`` of a failed invocation's error document, or ``fallback``."""
    if response is not None and response.payload:
        error = _json_or_text(response.payload)
        if isinstance(error, dict) and error.get("errorMessage"):
            return str(error["errorMessage"])
    return fallback


def dead_letter(
    *, source_arn: str, request_id: str, payload: bytes, status: int, message: str
) -> Outbound:
    data = message.encode("utf-8")[:ERROR_MESSAGE_LIMIT].decode("utf-8", errors="ignore")
    return Outbound(
        kind="dead-letter",
        source_arn=source_arn,
        body=(payload or b"{}").decode("utf-8", errors="replace"),
        attributes={
            "RequestID": ("String", request_id),
            "ErrorCode": ("Number", str(status)),
            "ErrorMessage": ("String", data),
        },
    )
