"""One registered extension, and the documents and lines the Extensions API produces for it.

Per-extension state and the wire and log formats live here; ``invocation.extensions`` holds
the API's routes and the lifecycle, everything that waits.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from lambdalite.invocation.http11 import Request, Response
from lambdalite.invocation.platform_log import iso_time
from lambdalite.invocation.runtime_events import api_error


@dataclass
class Extension:
    """One registered extension and where it is in the current phase."""

    name: str
    identifier: str
    events: tuple[str, ...]
    external: bool
    ready: bool = False  # asked for its next event since the last one it was given
    exited: bool = False
    failed: str | None = None  # error type it reported through /init/error or /exit/error
    queued: list[bytes] = field(default_factory=list)
    waiter: asyncio.Future[bytes] | None = None

    @property
    def gone(self) -> bool:
        return self.exited or self.failed is not None

    def push(self, payload: bytes) -> None:
        """Hand ``payload`` to a waiting ``/event/next``, or keep it for the next one."""
        self.ready = False
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(payload)
        else:
            self.queued.append(payload)


def identify(
    by_id: dict[str, Extension], request: Request
) -> tuple[Extension | None, Response | None]:
    """The extension a request's ``Lambda-Extension-Identifier`` names, or the error."""
    identifier = request.headers.get("lambda-extension-identifier", "")
    if not identifier:
        error = api_error(
            403,
            "Extension.MissingExtensionIdentifier",
            "Missing Lambda-Extension-Identifier header",
        )
        return None, error
    try:
        uuid.UUID(identifier)
    except ValueError:
        error = api_error(
            403, "Extension.InvalidExtensionIdentifier", "Invalid Lambda-Extension-Identifier"
        )
        return None, error
    extension = by_id.get(identifier)
    if extension is None:
        error = api_error(
            403, "Extension.UnknownExtensionIdentifier", "Unknown Lambda-Extension-Identifier"
        )
        return None, error
    return extension, None


def status_line(extension: Extension, state: str, error_type: str, as_json: bool) -> str:
    """The platform's ``EXTENSION`` log line (a ``platform.extension`` record in JSON)."""
    if as_json:
        record: dict[str, Any] = {
            "name": extension.name,
            "state": state,
            "events": list(extension.events),
        }
        if error_type:
            record["errorType"] = error_type
        document = {"time": iso_time(time.time()), "type": "platform.extension", "record": record}
        return json.dumps(document)
    events = ", ".join(extension.events)
    line = f"EXTENSION\tName: {extension.name}\tState: {state}\tEvents: [{events}]"
    return line + (f"\tError Type: {error_type}" if error_type else "")


def event_response(payload: bytes) -> Response:
    headers = [("Lambda-Extension-Event-Identifier", str(uuid.uuid4()))]
    return Response(200, payload, "application/json", headers)


def error_message(body: bytes) -> str:
    """The ``errorMessage`` of an error document an extension sent along, if any."""
    try:
        decoded = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return ""
    if isinstance(decoded, dict) and isinstance(decoded.get("errorMessage"), str):
        return str(decoded["errorMessage"])
    return ""
