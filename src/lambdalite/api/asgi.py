"""The AWS-compatible HTTP front door, as a raw ASGI application.

No web framework: the model already says how every request maps to an operation, and the
warm Invoke path should cost little more than a route lookup, a regex match per constrained
member and one ``send`` of the response. Per request this does: extra raw routes first (e.g.
code download links), then ``X-Amz-Target`` dispatch for awsJson services (CloudWatch Logs),
else rest-json routing; then body read, parse, validation, the handler, and serialization.
Every failure becomes an AWS-shaped JSON error; a stack trace never reaches the caller.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from lambdalite.api.jsonrpc import JsonRpcProtocol
from lambdalite.api.protocol import (
    HeaderMap,
    Response,
    ValueEncoder,
    dumps,
    parse_request,
    serialize_error,
    serialize_response,
)
from lambdalite.api.serving import send_whole
from lambdalite.api.spec import OperationSpec, ServiceSpec
from lambdalite.api.stream_send import forward
from lambdalite.api.validation import Validator
from lambdalite.core.errors import (
    LambdaError,
    NotImplementedException,
    RequestEntityTooLargeException,
    ServiceException,
    UnknownOperationException,
)

logger = logging.getLogger(__name__)

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ExtraRoute = tuple[str, str, AsgiApp]  # (method or "*", path prefix, app)

DEFAULT_MAX_BODY_BYTES = 80 * 1024 * 1024


@dataclass(frozen=True)
class RequestContext:
    """What a handler may need about the HTTP request besides its parsed parameters."""

    request_id: str
    method: str
    path: str
    headers: HeaderMap
    query: dict[str, list[str]]
    client_host: str | None
    operation: str = ""

    def __init__(
        self,
        request_id: str,
        method: str,
        path: str,
        headers: HeaderMap,
        query: dict[str, list[str]],
        client_host: str | None,
        operation: str = "",
    ) -> None:
        # One per request: the fields go straight into the instance's dict, which is what
        # the generated __init__ of a frozen class does one object.__setattr__ at a time.
        fields = self.__dict__
        fields["request_id"] = request_id
        fields["method"] = method
        fields["path"] = path
        fields["headers"] = headers
        fields["query"] = query
        fields["client_host"] = client_host
        fields["operation"] = operation


Handler = Callable[[dict[str, Any], RequestContext], Awaitable[dict[str, Any]]]


class _Disconnected(Exception):
    pass


def new_request_id() -> str:
    """A random (version 4) UUID in its text form, as ``str(uuid.uuid4())`` gives it but
    without building a ``UUID`` object on every request."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class AwsAsgiApp:
    """Serves the Lambda rest-json API and the CloudWatch Logs awsJson API on one listener.

    ``handlers`` and ``logs_handlers`` map model operation names to async handlers taking the
    parsed input and a ``RequestContext`` and returning the output dict; a handler signals
    AWS errors by raising ``LambdaError``. For an event-stream output
    (InvokeWithResponseStream) the handler puts an async iterable of already-framed bytes
    under the payload member, and it is streamed as it is produced.
    """

    def __init__(
        self,
        spec: ServiceSpec,
        handlers: Mapping[str, Handler],
        logs_handlers: Mapping[str, Handler] | None = None,
        extra_routes: Sequence[ExtraRoute] = (),
        *,
        logs_spec: ServiceSpec | None = None,
        validator: Validator | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        on_startup: Iterable[Callable[[], Awaitable[None]]] = (),
        on_shutdown: Iterable[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self.spec = spec
        self.handlers = dict(handlers)
        self.extra_routes = tuple(extra_routes)
        self._extra_prefixes = tuple(prefix for _, prefix, _ in self.extra_routes)
        self.max_body_bytes = max_body_bytes
        self._validator = validator or Validator()
        self._logs_validator = Validator(service_enums=())
        self._encoder = ValueEncoder()
        self._json: dict[str, tuple[JsonRpcProtocol, dict[str, Handler]]] = {}
        if logs_handlers is not None or logs_spec is not None:
            protocol = JsonRpcProtocol(logs_spec or ServiceSpec.load("logs"))
            self._json[protocol.target_prefix] = (protocol, dict(logs_handlers or {}))
        self._on_startup = tuple(on_startup)
        self._on_shutdown = tuple(on_shutdown)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # HTTP requests are served here rather than one call further down: every call is one
        # more coroutine that each wake-up of the request passes through.
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        if path.startswith(self._extra_prefixes):
            for route_method, prefix, app in self.extra_routes:
                if path.startswith(prefix) and route_method in (method, "*"):
                    await app(scope, receive, send)
                    return
        request_id = new_request_id()
        headers = HeaderMap.from_asgi(scope["headers"])
        raw_query: bytes = scope.get("query_string", b"")
        query = parse_qs(raw_query.decode("latin-1"), keep_blank_values=True) if raw_query else {}
        client = scope.get("client")
        target = headers.get("x-amz-target")
        response: Response | Callable[[Send], Awaitable[None]]
        try:
            if target is not None and path == "/":
                response = await self._json_request(
                    target, method, path, headers, query, client, request_id, receive
                )
            else:
                raw_path: bytes = scope.get("raw_path") or path.encode("utf-8")
                if b"?" in raw_path:  # some servers leave the query on raw_path
                    raw_path = raw_path.split(b"?", 1)[0]
                response = await self._rest_request(
                    method, path, raw_path, headers, query, client, request_id, receive
                )
        except _Disconnected:
            return
        if isinstance(response, tuple):
            await _send(send, response, whole=method != "HEAD")
        else:
            await response(send)

    async def _rest_request(
        self,
        method: str,
        path: str,
        raw_path: bytes,
        headers: HeaderMap,
        query: dict[str, list[str]],
        client: Any,
        request_id: str,
        receive: Receive,
    ) -> Response | Callable[[Send], Awaitable[None]]:
        found = self.spec.match(method, raw_path, query)
        if found is None:
            error: LambdaError = UnknownOperationException(f"Unknown operation: {method} {path}")
            return serialize_error(error, self.spec, request_id)
        op, path_params = found
        try:
            handler = self.handlers.get(op.name)
            if handler is None:
                raise NotImplementedException(
                    f"Operation {op.name} is not yet implemented by lambdalite"
                )
            body = await self._read_body(receive, headers, op)
            params = parse_request(op, path_params, query, headers, body)
            self._validator.validate(op, params)
            ctx = RequestContext(
                request_id, method, path, headers, query, client[0] if client else None, op.name
            )
            output = await handler(params, ctx)
            response = serialize_response(op, output, request_id, self._encoder)
            if op.streams_output and op.output_payload is not None:
                stream = output.get(op.output_payload.name)
                if isinstance(stream, AsyncIterable):
                    return _streamer(response, stream, receive)
            return response
        except _Disconnected:
            raise
        except LambdaError as exc:
            return serialize_error(exc, self.spec, request_id)
        except Exception:
            logger.exception("unhandled error in %s (request %s)", op.name, request_id)
            return serialize_error(_internal(request_id), self.spec, request_id)

    async def _json_request(
        self,
        target: str,
        method: str,
        path: str,
        headers: HeaderMap,
        query: dict[str, list[str]],
        client: Any,
        request_id: str,
        receive: Receive,
    ) -> Response:
        prefix = target.partition(".")[0]
        entry = self._json.get(prefix)
        if entry is None:
            error = UnknownOperationException(f"Unknown operation: {target}")
            return _json_error_without_service(error, request_id)
        protocol, handlers = entry
        op = protocol.operation_for_target(target)
        try:
            if op is None or method != "POST":
                raise UnknownOperationException(f"Unknown operation: {target}")
            handler = handlers.get(op.name)
            if handler is None:
                raise NotImplementedException(
                    f"Operation {op.name} is not yet implemented by lambdalite"
                )
            body = await self._read_body(receive, headers, op)
            params = protocol.parse_request(op, body)
            self._logs_validator.validate(op, params)
            ctx = RequestContext(
                request_id, method, path, headers, query, client[0] if client else None, op.name
            )
            output = await handler(params, ctx)
            return protocol.serialize_response(op, output, request_id)
        except _Disconnected:
            raise
        except LambdaError as exc:
            return protocol.serialize_error(exc, request_id)
        except Exception:
            logger.exception("unhandled error in %s (request %s)", target, request_id)
            return protocol.serialize_error(_internal(request_id), request_id)

    async def _read_body(self, receive: Receive, headers: HeaderMap, op: OperationSpec) -> bytes:
        limit = self.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit, op)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk: bytes = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit, op)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # --------------------------------------------------------------- lifespan

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in self._on_startup:
                        await hook()
                except Exception as exc:
                    logger.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in self._on_shutdown:
                    try:
                        await hook()
                    except Exception:
                        logger.exception("shutdown hook failed")
                await send({"type": "lifespan.shutdown.complete"})
                return


def _too_large(limit: int, op: OperationSpec) -> LambdaError:
    return RequestEntityTooLargeException(
        f"Request must be smaller than {limit} bytes for the {op.name} operation"
    )


def _internal(request_id: str) -> LambdaError:
    return ServiceException(f"An internal error occurred. Request id: {request_id}")


def _json_error_without_service(error: LambdaError, request_id: str) -> Response:
    body = dumps({"__type": error.code, "message": error.message})
    headers = [
        ("x-amzn-RequestId", request_id),
        ("Content-Type", "application/x-amz-json-1.1"),
    ]
    return 400, headers, body


# Header names as they go on the wire, by the name a response gives (a handful in all).
_NAMES: dict[str, bytes] = {}
_NAMES_MAX = 256


def _encode_headers(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    names = _NAMES
    raw: list[tuple[bytes, bytes]] = []
    for k, v in headers:
        name = names.get(k)
        if name is None:
            name = k.lower().encode("latin-1")
            if len(names) < _NAMES_MAX:
                names[k] = name
        raw.append((name, _header_bytes(v)))
    return raw


def _header_bytes(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        # HTTP header values are bytes; UTF-8 is what clients decode in practice.
        return value.encode("utf-8")


async def _send(send: Send, response: Response, whole: bool = False) -> None:
    status, headers, body = response
    raw = _encode_headers(headers)
    raw.append((b"content-length", str(len(body)).encode("ascii")))
    start = {"type": "http.response.start", "status": status, "headers": raw}
    message = {"type": "http.response.body", "body": body}
    if whole:
        await send_whole(send, start, message)
    else:
        await send(start)
        await send(message)


def _streamer(
    response: Response, stream: AsyncIterable[bytes], receive: Receive
) -> Callable[[Send], Awaitable[None]]:
    async def write(send: Send) -> None:
        status, headers, _ = response
        await send(
            {"type": "http.response.start", "status": status, "headers": _encode_headers(headers)}
        )
        await forward(stream, send, receive, "event stream")

    return write
