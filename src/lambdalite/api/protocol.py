"""The rest-json binding: the exact inverse of botocore's RestJSON serializer and parser.

``parse_request`` turns an HTTP request back into the parameters the SDK user passed (typed
URI/query/header members, the raw payload blob, JSON body members with blobs decoded), and
``serialize_response``/``serialize_error`` produce what botocore's parser turns back into the
handler's dict or the raised error. The JSON value codec here is shared with the awsJson
protocol (``jsonrpc``), which uses the same body encoding.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any, TypeVar, overload

from botocore.model import Shape
from botocore.utils import parse_timestamp

from lambdalite.api.spec import MemberBinding, OperationSpec, ServiceSpec
from lambdalite.core.errors import (
    InvalidParameterValueException,
    InvalidRequestContentException,
    LambdaError,
)

Response = tuple[int, list[tuple[str, str]], bytes]
JSON_CONTENT_TYPE = "application/json"
_BODY_PARSE_ERROR = "Could not parse request body into json: "
_T = TypeVar("_T")


class HeaderMap(Mapping[str, str]):
    """Case-insensitive, read-only view of request headers (last value wins)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._items: dict[str, str] = {}
        if items:
            for key, value in items.items():
                self._items[key.lower()] = value

    @classmethod
    def from_asgi(cls, raw: list[tuple[bytes, bytes]]) -> HeaderMap:
        headers = cls()
        headers._items = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}
        return headers

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items

    @overload
    def get(self, key: str) -> str | None: ...
    @overload
    def get(self, key: str, default: str) -> str: ...
    @overload
    def get(self, key: str, default: _T) -> str | _T: ...
    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key.lower(), default)

    def __iter__(self) -> Any:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"HeaderMap({self._items!r})"


# --------------------------------------------------------------------------- requests


def parse_request(
    op: OperationSpec,
    path_params: Mapping[str, str],
    query: Mapping[str, list[str]],
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, Any]:
    """Rebuild the operation's input parameters from the parts of an HTTP request."""
    params: dict[str, Any] = {}
    for b in op.uri_members:
        raw = path_params.get(b.wire_name)
        if raw is not None:
            params[b.name] = _from_text(b, raw)
    for b in op.query_members:
        if b.shape.type_name == "map":
            bound = {m.wire_name for m in op.query_members}
            extra = {k: v[0] for k, v in query.items() if k not in bound and v}
            if extra:
                params[b.name] = extra
            continue
        values = query.get(b.wire_name)
        if values:
            if b.shape.type_name == "list":
                params[b.name] = [_from_text(b, v, b.shape.member) for v in values]
            else:
                params[b.name] = _from_text(b, values[0])
    if op.header_members:
        hmap = headers if isinstance(headers, HeaderMap) else HeaderMap(headers)
        for b in op.header_members:
            if b.location == "headers":
                prefix = b.wire_name.lower()
                found = {k[len(prefix) :]: v for k, v in hmap.items() if k.startswith(prefix)}
                if found:
                    params[b.name] = found
                continue
            raw = hmap.get(b.wire_name)
            if raw is not None:
                params[b.name] = _from_header(b, raw)
    payload = op.input_payload
    if payload is not None:
        kind = payload.shape.type_name
        if kind == "blob":
            params[payload.name] = body
        elif kind == "string":
            params[payload.name] = body.decode("utf-8")
        elif body:
            params[payload.name] = decode_value(payload.shape, load_json_body(body), payload.name)
    elif op.body_members and body:
        document = load_json_body(body)
        for b in op.body_members:
            value = document.get(b.wire_name)
            if value is not None:
                params[b.name] = decode_value(b.shape, value, b.name)
    return params


def load_json_body(body: bytes) -> dict[str, Any]:
    """Parse a request body that must hold a JSON object (an empty body is ``{}``)."""
    if not body.strip():
        return {}
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestContentException(f"{_BODY_PARSE_ERROR}{exc}") from None
    if not isinstance(document, dict):
        raise InvalidRequestContentException(
            f"{_BODY_PARSE_ERROR}expected a JSON object, got {type(document).__name__}"
        )
    return document


def _from_text(b: MemberBinding, raw: str, shape: Shape | None = None) -> Any:
    shape = shape or b.shape
    kind = shape.type_name
    try:
        if kind in ("integer", "long"):
            return int(raw)
        if kind in ("double", "float"):
            return float(raw)
        if kind == "boolean":
            lowered = raw.lower()
            if lowered not in ("true", "false"):
                raise ValueError(raw)
            return lowered == "true"
        if kind == "timestamp":
            return parse_timestamp(raw)
    except (ValueError, OverflowError):
        raise InvalidParameterValueException(
            f"Invalid value '{raw}' for parameter {b.name}: expected {kind}"
        ) from None
    return raw


def _from_header(b: MemberBinding, raw: str) -> Any:
    shape = b.shape
    if shape.type_name == "string" and shape.serialization.get("jsonvalue"):
        try:
            return json.loads(base64.b64decode(raw))
        except (ValueError, binascii.Error):
            raise InvalidRequestContentException(
                f"Invalid value for header {b.wire_name}: expected base64-encoded JSON"
            ) from None
    if shape.type_name == "list":
        return [_from_text(b, item.strip(), shape.member) for item in raw.split(",")]
    return _from_text(b, raw)


def decode_value(shape: Shape, value: Any, path: str) -> Any:
    """Convert one JSON value to what an SDK user passes (blobs as bytes, datetimes)."""
    kind = shape.type_name
    if kind == "structure":
        if shape.is_document_type:
            return value
        _expect(isinstance(value, dict), shape, value, path)
        out: dict[str, Any] = {}
        for name, member in shape.members.items():
            item = value.get(member.serialization.get("name", name))
            if item is not None:
                out[name] = decode_value(member, item, f"{path}.{name}" if path else name)
        return out
    if kind == "list":
        _expect(isinstance(value, list), shape, value, path)
        return [decode_value(shape.member, v, path) for v in value if v is not None]
    if kind == "map":
        _expect(isinstance(value, dict), shape, value, path)
        return {k: decode_value(shape.value, v, path) for k, v in value.items() if v is not None}
    if kind == "string":
        _expect(isinstance(value, str), shape, value, path)
        return value
    if kind == "boolean":
        _expect(isinstance(value, bool), shape, value, path)
        return value
    if kind in ("integer", "long"):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        _expect(isinstance(value, int) and not isinstance(value, bool), shape, value, path)
        return value
    if kind in ("double", "float"):
        _expect(isinstance(value, int | float) and not isinstance(value, bool), shape, value, path)
        return float(value)
    if kind == "blob":
        _expect(isinstance(value, str), shape, value, path)
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequestContentException(
                f"{_BODY_PARSE_ERROR}Failed to decode base64 value of '{path}'"
            ) from None
    if kind == "timestamp":
        _expect(
            isinstance(value, str | int | float) and not isinstance(value, bool), shape, value, path
        )
        try:
            return parse_timestamp(value)
        except (ValueError, OverflowError):
            _expect(False, shape, value, path)
    return value


def _expect(ok: bool, shape: Shape, value: Any, path: str) -> None:
    if not ok:
        raise InvalidRequestContentException(
            f"{_BODY_PARSE_ERROR}Cannot deserialize value of type {shape.type_name} "
            f"({shape.name}) from {type(value).__name__} at '{path}'"
        )


# -------------------------------------------------------------------------- responses


class ValueEncoder:
    """Encodes handler output for a JSON body, skipping subtrees that need no conversion.

    Only blobs (base64), ``timestamp`` shapes (epoch seconds) and renamed members differ
    between a handler's dict and the wire; which shapes contain any is computed once per
    shape name, so plain configuration dicts go to ``json.dumps`` untouched.
    """

    def __init__(self) -> None:
        self._walk: dict[str, bool] = {}

    def encode(self, shape: Shape, value: Any) -> Any:
        if not self.needs_walk(shape):
            return value
        kind = shape.type_name
        if kind == "structure":
            if shape.is_document_type:
                return value
            members = shape.members
            out: dict[str, Any] = {}
            for name, item in value.items():
                member = members.get(name)
                if member is not None and item is not None:
                    key = member.serialization.get("name", name)
                    out[key] = self.encode(member, item)
            return out
        if kind == "list":
            return [self.encode(shape.member, v) for v in value]
        if kind == "map":
            return {k: self.encode(shape.value, v) for k, v in value.items()}
        if kind == "blob":
            raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
            return base64.b64encode(raw).decode("ascii")
        if kind == "timestamp":
            return _timestamp(value, shape.serialization.get("timestampFormat", "unixtimestamp"))
        return value

    def needs_walk(self, shape: Shape) -> bool:
        cached = self._walk.get(shape.name)
        if cached is not None:
            return cached
        self._walk[shape.name] = True  # recursive shapes: assume conversion is needed
        kind = shape.type_name
        if kind in ("blob", "timestamp"):
            result = True
        elif kind == "structure":
            result = not shape.is_document_type and any(
                "name" in m.serialization or self.needs_walk(m) for m in shape.members.values()
            )
        elif kind == "list":
            result = self.needs_walk(shape.member)
        elif kind == "map":
            result = self.needs_walk(shape.value)
        else:
            result = False
        self._walk[shape.name] = result
        return result


def _timestamp(value: Any, fmt: str) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        if fmt == "iso8601":
            return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
        if fmt == "rfc822":
            return formatdate(value.timestamp(), usegmt=True)
        return round(value.timestamp(), 3)
    return value


def _header_value(shape: Shape, value: Any) -> str:
    kind = shape.type_name
    if kind == "string" and shape.serialization.get("jsonvalue"):
        return base64.b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "timestamp":
        return str(_timestamp(value, shape.serialization.get("timestampFormat", "rfc822")))
    if kind == "list":
        return ",".join(_header_value(shape.member, v) for v in value)
    return str(value)


def serialize_response(
    op: OperationSpec,
    output: Mapping[str, Any],
    request_id: str | None = None,
    encoder: ValueEncoder | None = None,
) -> Response:
    """Render a handler's output dict as the operation's rest-json response.

    Pass a long-lived ``encoder`` on hot paths so its per-shape analysis is reused.
    """
    encoder = encoder or ValueEncoder()
    status = op.success_status
    headers: list[tuple[str, str]] = []
    if request_id is not None:
        headers.append(("x-amzn-RequestId", request_id))
    if op.output_status is not None:
        code = output.get(op.output_status.name)
        if code is not None:
            status = int(code)
    for b in op.output_headers:
        value = output.get(b.name)
        if value is None:
            continue
        if b.location == "headers":
            headers.extend((f"{b.wire_name}{k}", str(v)) for k, v in value.items())
        else:
            headers.append((b.wire_name, _header_value(b.shape, value)))
    body = b""
    payload = op.output_payload
    if payload is not None:
        value = output.get(payload.name)
        if value is None:
            pass
        elif op.streams_output:
            # Pre-framed event-stream bytes go out as they are; an async iterable of frames
            # is written by the ASGI layer as it is produced.
            if isinstance(value, bytes | bytearray):
                body = bytes(value)
        elif payload.shape.type_name in ("blob", "string"):
            body = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        else:
            body = dumps(encoder.encode(payload.shape, value))
    elif op.output_body:
        document: dict[str, Any] = {}
        for b in op.output_body:
            value = output.get(b.name)
            if value is not None:
                document[b.wire_name] = encoder.encode(b.shape, value)
        body = dumps(document)
    if body and not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", JSON_CONTENT_TYPE))
    return status, headers, body


def serialize_error(
    error: LambdaError,
    spec: ServiceSpec,
    request_id: str | None = None,
    encoder: ValueEncoder | None = None,
) -> Response:
    """Render a ``LambdaError`` the way botocore's RestJSONParser expects to read it."""
    shape = spec.error_shape(error.code)
    document: dict[str, Any] = {"Type": "User" if error.sender_fault else "Service"}
    document[spec.message_member(error.code)] = error.message
    headers: list[tuple[str, str]] = []
    if request_id is not None:
        headers.append(("x-amzn-RequestId", request_id))
    headers.append(("x-amzn-ErrorType", error.code))
    headers.append(("Content-Type", JSON_CONTENT_TYPE))
    for key, value in error.extra.items():
        member = shape.members.get(key) if shape is not None else None
        if member is not None and member.serialization.get("location") == "header":
            headers.append((member.serialization.get("name", key), str(value)))
        elif member is not None:
            document[key] = (encoder or ValueEncoder()).encode(member, value)
        else:
            document[key] = value
    headers.extend(error.headers.items())
    return error.status, headers, dumps(document)


def dumps(document: Any) -> bytes:
    """Compact JSON, UTF-8; non-ASCII text is kept as is (valid JSON, smaller bodies)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
