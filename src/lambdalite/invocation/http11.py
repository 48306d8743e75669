"""A small HTTP/1.1 server on asyncio protocols, for the Runtime API.

The Runtime API sits on the warm path of every invocation, so this server does only what its
clients need and does it cheaply: persistent connections, ``Content-Length`` and chunked
request bodies (with trailers, used by response streaming), ``Expect: 100-continue`` (libcurl
sends it for larger bodies and waits for it), responses written head and body in a single
``write`` on a socket with ``TCP_NODELAY``. Requests on one connection are handled one after
the other. Bodies above ``max_body`` are read and thrown away rather than buffered, and the
request is flagged so the handler can refuse it. A chunked body can instead be routed, chunk by
chunk, to a consumer chosen from the request head (streamed function responses).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast

_MAX_HEAD = 64 * 1024
_MAX_BACKLOG = 1024 * 1024
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_REASONS = {status.value: status.phrase for status in HTTPStatus}


@dataclass(slots=True)
class Request:
    method: str
    path: str  # without the query string
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    body_size: int = 0  # bytes received, also when the body was discarded
    too_large: bool = False
    trailers: dict[str, str] = field(default_factory=dict)
    # Resolved when the client closes the connection (lets long polls give up).
    disconnected: asyncio.Future[None] | None = None


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


class PendingResponse:
    """A response a handler gives later (a long poll), written the moment it is given.

    A future would have the answer written one callback later, on a further pass of the
    event loop; resolving this writes it at once, in the resolver's own turn, so a runtime
    waiting in ``/next`` gets its event as soon as the invocation hands it over.
    """

    __slots__ = ("_response", "_write")

    def __init__(self) -> None:
        self._response: Response | None = None
        self._write: Callable[[Response], None] | None = None

    def done(self) -> bool:
        return self._response is not None

    def set_result(self, response: Response) -> None:
        if self._response is not None:
            raise RuntimeError("the response was already given")
        self._response = response
        write, self._write = self._write, None
        if write is not None:
            write(response)

    def bind(self, write: Callable[[Response], None]) -> None:
        """Called by the server: where the response goes once given (at once if it was)."""
        if self._response is not None:
            write(self._response)
        else:
            self._write = write


Handler = Callable[[Request], "Response | Awaitable[Response] | PendingResponse"]
# Given a request whose head has arrived, returns where its chunked body should go as it
# arrives (the request then reaches the handler with an empty body), or None to buffer it.
BodyRouter = Callable[[Request], "Callable[[bytes], None] | None"]


class _BadRequest(Exception):
    pass


class HttpProtocol(asyncio.Protocol):
    def __init__(
        self,
        handler: Handler,
        max_body: int,
        accept: Callable[[Any], bool] | None = None,
        router: BodyRouter | None = None,
    ) -> None:
        self._handler = handler
        self._max_body = max_body
        self._accept = accept
        self._router = router
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._busy = False  # a handler is running; parsing waits for it
        self._paused = False
        self._closing = False
        self._disconnected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.on_lost: Callable[[HttpProtocol], None] | None = None
        self._reset()

    def _reset(self) -> None:
        self._request: Request | None = None
        self._state = "head"
        self._remaining = 0
        self._chunks = bytearray()
        self._keep_alive = True
        self._sink: Callable[[bytes], None] | None = None

    # -- transport callbacks ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (not necessarily a subclass of ``asyncio.Transport``: event
        # loops other than asyncio's own bring their own classes).
        stream = self._transport = cast(asyncio.Transport, transport)
        sock = stream.get_extra_info("socket")
        if self._accept is not None and (sock is None or not self._accept(sock)):
            stream.abort()  # not a client this server talks to: drop it unanswered
            return
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self.on_lost is not None:
            self.on_lost(self)
        if not self._disconnected.done():
            self._disconnected.set_result(None)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._busy:
            self._parse()
        elif len(self._buffer) > _MAX_BACKLOG and self._transport is not None:
            # A client that keeps sending while its previous request is pending waits.
            self._transport.pause_reading()
            self._paused = True

    # -- parsing ----------------------------------------------------------------------------
    def _parse(self) -> None:
        try:
            while self._transport is not None and not self._busy and not self._closing:
                if not self._step():
                    break
        except _BadRequest as exc:
            self._send(Response(400, str(exc).encode(), "text/plain"), close=True)

    def _step(self) -> bool:
        """Advance by one unit; False when more data is needed."""
        buf = self._buffer
        if self._state == "head":
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    raise _BadRequest("request head too large")
                return False
            head = buf[:end].decode("latin-1")
            del buf[: end + 4]
            self._start_request(head)
            return True
        if self._state == "length":
            take = min(self._remaining, len(buf))
            if take == 0 and self._remaining:
                return False
            self._add_body(buf[:take])
            del buf[:take]
            self._remaining -= take
            if self._remaining == 0:
                self._dispatch()
            return True
        if self._state == "chunk-size":
            end = buf.find(b"\r\n")
            if end < 0:
                return False
            size_text = bytes(buf[:end]).split(b";", 1)[0].strip()
            del buf[: end + 2]
            try:
                self._remaining = int(size_text, 16)
            except ValueError:
                raise _BadRequest("bad chunk size") from None
            self._state = "chunk-data" if self._remaining else "trailers"
            return True
        if self._state == "chunk-data":
            if self._remaining:
                take = min(self._remaining, len(buf))
                if take == 0:
                    return False
                self._add_body(buf[:take])
                del buf[:take]
                self._remaining -= take
                return True
            if len(buf) < 2:
                return False
            if buf[:2] != b"\r\n":
                raise _BadRequest("bad chunk terminator")
            del buf[:2]
            self._state = "chunk-size"
            return True
        # trailers: header lines until an empty one
        end = buf.find(b"\r\n")
        if end < 0:
            return False
        line = bytes(buf[:end]).decode("latin-1")
        del buf[: end + 2]
        if line:
            name, _, value = line.partition(":")
            assert self._request is not None
            self._request.trailers[name.strip().lower()] = value.strip()
            return True
        self._dispatch()
        return True

    def _start_request(self, head: str) -> None:
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest("bad request line")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest("bad header line")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        connection = headers.get("connection", "").lower()
        self._keep_alive = (
            "close" not in connection if parts[2] == "HTTP/1.1" else "keep-alive" in connection
        )
        path = parts[1].split("?", 1)[0]
        self._request = Request(parts[0], path, headers, disconnected=self._disconnected)
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise _BadRequest("bad content-length") from None
        if length < 0:
            raise _BadRequest("bad content-length")
        if (chunked or length) and headers.get("expect", "").lower() == "100-continue":
            assert self._transport is not None
            self._transport.write(_CONTINUE)
        if chunked:
            self._state = "chunk-size"
            if self._router is not None:
                self._sink = self._router(self._request)
        elif length:
            self._state, self._remaining = "length", length
        else:
            self._dispatch()

    def _add_body(self, data: bytearray) -> None:
        request = self._request
        assert request is not None
        request.body_size += len(data)
        if self._sink is not None:
            self._sink(bytes(data))
            return
        if request.body_size > self._max_body:
            request.too_large = True
            self._chunks.clear()
        else:
            self._chunks += data

    def _dispatch(self) -> None:
        request = self._request
        assert request is not None
        request.body = bytes(self._chunks)
        keep_alive = self._keep_alive
        self._reset()
        try:
            result = self._handler(request)
        except Exception:
            result = Response(500, b'{"errorMessage":"internal error","errorType":"Unknown"}')
        if isinstance(result, Response):
            self._send(result, close=not keep_alive)
            return
        self._busy = True
        if isinstance(result, PendingResponse):
            result.bind(lambda response: self._given(response, keep_alive))
            return
        task = asyncio.ensure_future(result)
        task.add_done_callback(lambda t: self._finish(t, keep_alive))

    def _finish(self, task: asyncio.Future[Response], keep_alive: bool) -> None:
        if task.cancelled() or task.exception() is not None:
            response = Response(500, b'{"errorMessage":"internal error","errorType":"Unknown"}')
        else:
            response = task.result()
        self._complete(response, keep_alive)
        if self._buffer:
            self._parse()

    def _given(self, response: Response, keep_alive: bool) -> None:
        """A pending response was given, possibly from deep inside another handler: write
        it now, but parse whatever else arrived meanwhile on a later turn."""
        self._complete(response, keep_alive)
        if self._buffer:
            asyncio.get_running_loop().call_soon(self._parse)

    def _complete(self, response: Response, keep_alive: bool) -> None:
        self._busy = False
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        self._send(response, close=not keep_alive)

    def _send(self, response: Response, close: bool) -> None:
        transport = self._transport
        if transport is None:
            return
        status, body = response.status, response.body
        reason = _REASONS.get(status) or HTTPStatus(status).phrase
        head = f"HTTP/1.1 {status} {reason}\r\n"
        if body or status not in (204, 304):
            head += f"Content-Type: {response.content_type}\r\n"
        head += f"Content-Length: {len(body)}\r\n"
        for name, value in response.headers:
            head += f"{name}: {value}\r\n"
        if close:
            head += "Connection: close\r\n"
        transport.write((head + "\r\n").encode() + body)
        if close:
            self._closing = True
            transport.close()


class HttpServer:
    """A listening socket and its live connections, which ``close`` drops at once."""

    def __init__(
        self,
        handler: Handler,
        max_body: int,
        accept: Callable[[Any], bool] | None = None,
        router: BodyRouter | None = None,
    ) -> None:
        self._handler = handler
        self._max_body = max_body
        self._accept = accept  # called with each connection's socket; False drops it
        self._router = router
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[HttpProtocol] = set()

    async def start(self, host: str, port: int = 0, sock: socket.socket | None = None) -> int:
        """Listen on ``host:port`` (0 picks a free port), or serve the already listening
        ``sock``; returns the port."""
        loop = asyncio.get_running_loop()
        if sock is not None:
            self._server = await loop.create_server(self._protocol, sock=sock)
        else:
            self._server = await loop.create_server(self._protocol, host, port)
        port_bound: int = self._server.sockets[0].getsockname()[1]
        return port_bound

    def _protocol(self) -> HttpProtocol:
        protocol = HttpProtocol(self._handler, self._max_body, self._accept, self._router)
        self._connections.add(protocol)
        protocol.on_lost = self._connections.discard
        return protocol

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for protocol in list(self._connections):
            protocol.abort()
        self._connections.clear()
        await server.wait_closed()
