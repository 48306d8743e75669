"""HTTP requests as Lambda events (payload format 2.0) and function results as HTTP responses.

Pure functions, so every mapping rule of function URLs is testable without a server.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

_TEXT_TYPES = (
    "application/json",
    "application/xml",
    "application/x-www-form-urlencoded",
    "application/javascript",
    "application/ecmascript",
    "application/graphql",
)


@dataclass
class HttpRequest:
    method: str
    path: str  # as the function sees it (rawPath)
    raw_query: str
    headers: list[tuple[str, str]]  # as received, names in any case
    body: bytes
    source_ip: str
    domain: str
    url_id: str
    request_id: str
    received: float = field(default_factory=time.time)

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name]
        return ",".join(values) if values else None


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    # More body, sent after ``body`` as it arrives (RESPONSE_STREAM URLs).
    stream: AsyncIterator[bytes] | None = None


def is_text(content_type: str | None, body: bytes) -> bool:
    if not content_type:
        try:
            body.decode()
        except UnicodeDecodeError:
            return False
        return True
    kind = content_type.split(";", 1)[0].strip().lower()
    return (
        kind.startswith("text/")
        or kind in _TEXT_TYPES
        or kind.endswith("+json")
        or kind.endswith("+xml")
    )


def _query_parameters(raw_query: str) -> dict[str, str]:
    params: dict[str, list[str]] = {}
    for pair in raw_query.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        params.setdefault(unquote_plus(key), []).append(unquote_plus(value))
    return {k: ",".join(v) for k, v in params.items()}


def build_event(
    request: HttpRequest, authorizer: dict[str, Any] | None, account: str
) -> dict[str, Any]:
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        lower = name.lower()
        if lower == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        headers[lower] = f"{headers[lower]},{value}" if lower in headers else value
    headers.setdefault("x-forwarded-for", request.source_ip)
    headers.setdefault("x-forwarded-proto", "http")
    received = time.gmtime(request.received)
    context: dict[str, Any] = {
        "accountId": account,
        "apiId": request.url_id,
        "domainName": request.domain,
        "domainPrefix": request.url_id,
        "http": {
            "method": request.method,
            "path": request.path,
            "protocol": "HTTP/1.1",
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request.request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", received),
        "timeEpoch": int(request.received * 1000),
    }
    if authorizer is not None:
        context["authorizer"] = authorizer
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.path,
        "rawQueryString": request.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    query = _query_parameters(request.raw_query)
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = context
    if request.body:
        if is_text(headers.get("content-type"), request.body):
            event["body"] = request.body.decode()
            event["isBase64Encoded"] = False
        else:
            event["body"] = base64.b64encode(request.body).decode()
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


def error_response(status: int, message: str, error_type: str | None = None) -> HttpResponse:
    headers = [("content-type", "application/json")]
    if error_type:
        headers.append(("x-amzn-ErrorType", error_type))
    return HttpResponse(status, headers, json.dumps({"Message": message}).encode())


BAD_GATEWAY = HttpResponse(502, [("content-type", "text/plain")], b"Internal Server Error")


def map_result(payload: bytes) -> HttpResponse:
    """A function's result to the HTTP response a URL caller gets (502 when it is invalid)."""
    try:
        result = json.loads(payload)
    except ValueError:
        return BAD_GATEWAY
    if not (isinstance(result, dict) and "statusCode" in result):
        return HttpResponse(200, [("content-type", "application/json")], payload)
    try:
        status = int(result["statusCode"])
        headers = [(str(k), _header_value(v)) for k, v in (result.get("headers") or {}).items()]
        cookies = [str(c) for c in (result.get("cookies") or [])]
        body = result.get("body")
        if body is None:
            data = b""
        elif result.get("isBase64Encoded"):
            data = base64.b64decode(str(body), validate=True)
        else:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    except (TypeError, ValueError, AttributeError, binascii.Error):
        return BAD_GATEWAY
    if not 100 <= status <= 599:
        return BAD_GATEWAY
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("content-type", "application/json"))
    headers += [("set-cookie", c) for c in cookies]
    return HttpResponse(status, headers, data)


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _origin_allowed(cors: Mapping[str, Any], origin: str | None) -> bool:
    if not origin:
        return False
    allowed = [o.lower() for o in cors.get("AllowOrigins") or []]
    return "*" in allowed or origin.lower() in allowed


def _allow_origin(cors: Mapping[str, Any], origin: str) -> str:
    wildcard = "*" in (cors.get("AllowOrigins") or [])
    return "*" if wildcard and not cors.get("AllowCredentials") else origin


def preflight(cors: Mapping[str, Any], origin: str | None) -> HttpResponse:
    """The platform's own answer to a CORS preflight; the function is not invoked."""
    headers: list[tuple[str, str]] = [("vary", "Origin")]
    if origin and _origin_allowed(cors, origin):
        headers.append(("access-control-allow-origin", _allow_origin(cors, origin)))
        if cors.get("AllowMethods"):
            headers.append(("access-control-allow-methods", ",".join(cors["AllowMethods"])))
        if cors.get("AllowHeaders"):
            headers.append(("access-control-allow-headers", ",".join(cors["AllowHeaders"])))
        if cors.get("MaxAge"):
            headers.append(("access-control-max-age", str(cors["MaxAge"])))
        if cors.get("AllowCredentials"):
            headers.append(("access-control-allow-credentials", "true"))
    return HttpResponse(200, headers, b"")


_CONFIGURED = (
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-expose-headers",
)


def apply_cors(response: HttpResponse, cors: Mapping[str, Any], origin: str | None) -> None:
    """Configured CORS headers replace whatever the function set for the same names."""
    response.headers = [(k, v) for k, v in response.headers if k.lower() not in _CONFIGURED]
    if not _origin_allowed(cors, origin):
        return
    assert origin is not None
    response.headers.append(("access-control-allow-origin", _allow_origin(cors, origin)))
    if cors.get("ExposeHeaders"):
        response.headers.append(("access-control-expose-headers", ",".join(cors["ExposeHeaders"])))
    if cors.get("AllowCredentials"):
        response.headers.append(("access-control-allow-credentials", "true"))
    response.headers.append(("vary", "Origin"))


def is_preflight(method: str, headers: Sequence[tuple[str, str]]) -> bool:
    names = {k.lower() for k, _ in headers}
    return method == "OPTIONS" and "origin" in names and "access-control-request-method" in names
