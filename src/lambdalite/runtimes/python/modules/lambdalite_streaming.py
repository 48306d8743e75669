"""Response streaming for Python functions.

AWS's Python runtimes answer buffered only; here a handler may stream instead by returning an
iterator (a generator function is the natural way to write one). Each item it yields (``bytes``
or ``str``, sent as UTF-8) is passed to the caller as it is produced whenever the function is
invoked through a streaming path (InvokeWithResponseStream, a ``RESPONSE_STREAM`` function URL);
a buffered Invoke gets the items joined into one payload. Functions import the helpers as
``lambdalite_streaming``:

* ``stream(chunks, content_type)`` names the content type of a plain stream;
* ``stream_response(body, status_code, headers, cookies)`` answers an HTTP caller (function
  URL): it sends the HTTP integration prelude, JSON metadata followed by eight NUL bytes,
  ahead of the body.

The runtime client (``bootstrap.py``) uses ``Stream`` to post such a result to the Runtime API
in streaming mode: one chunked request, opened only once the first item exists, so a handler
that fails before producing anything reports an ordinary error. A failure after that ends the
request with the error trailers AWS defines, carrying the same error document.

Standard library only, and importable by every supported interpreter (3.9 and later). The
runtime loads it lazily, so functions that do not stream never pay for it.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any

Chunk = Any  # bytes, bytearray, memoryview or str; anything else fails the stream

__all__ = ["HTTP_INTEGRATION", "StreamingBody", "stream", "stream_response"]

HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_DELIMITER = b"\x00" * 8
_ERROR_TYPE = "Lambda-Runtime-Function-Error-Type"
_ERROR_BODY = "Lambda-Runtime-Function-Error-Body"
_END = object()


class StreamingBody:
    """An iterator of response chunks together with how to send them.

    ``prelude`` (bytes) goes out ahead of the first chunk, in the same write, so that a body
    failing before its first chunk still counts as "nothing sent".
    """

    def __init__(
        self,
        chunks: Iterable[Chunk] | str | bytes,
        content_type: str = DEFAULT_CONTENT_TYPE,
        prelude: bytes = b"",
    ) -> None:
        single = isinstance(chunks, (str, bytes, bytearray))
        self.chunks: Iterator[Chunk] = iter([chunks] if single else chunks)
        self.content_type = str(content_type)
        self.prelude = prelude

    def __iter__(self) -> StreamingBody:
        return self

    def __next__(self) -> Chunk:
        return next(self.chunks)

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


def stream(
    chunks: Iterable[Chunk] | str | bytes, content_type: str = DEFAULT_CONTENT_TYPE
) -> StreamingBody:
    """``chunks`` (an iterable, or one ``str``/``bytes``) streamed with ``content_type``."""
    return StreamingBody(chunks, content_type)


def stream_response(
    body: Iterable[Chunk] | str | bytes = (),
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    cookies: Iterable[str] | None = None,
) -> StreamingBody:
    """An HTTP response for a function URL in ``RESPONSE_STREAM`` mode: ``status_code``,
    ``headers`` and ``cookies`` (``Set-Cookie`` values) go in the prelude, ``body`` (an
    iterable of chunks, or one ``str``/``bytes``) streams after it."""
    prelude: dict[str, Any] = {"statusCode": int(status_code), "headers": dict(headers or {})}
    if cookies:
        prelude["cookies"] = [str(cookie) for cookie in cookies]
    metadata = json.dumps(prelude, separators=(",", ":")).encode()
    return StreamingBody(body, HTTP_INTEGRATION, metadata + _DELIMITER)


def as_bytes(item: Chunk) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, (bytearray, memoryview)):
        return bytes(item)
    raise TypeError(f"a streamed chunk must be bytes or str, not {type(item).__name__}")


def _without_own_frames(exc: BaseException) -> BaseException:
    """Drop this module's frames from the front of ``exc``'s traceback: the error report then
    starts at the function's code, as it does for a buffered handler."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return exc.with_traceback(tb)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Stream:
    """A streaming result on its way to the Runtime API.

    The constructor pulls the first chunk. An exception doing so is kept in ``error`` (its
    traceback starting at the function's code) for the runtime to raise and report through
    ``/error``, since nothing has been sent yet.
    """

    def __init__(self, result: Iterator[Chunk]) -> None:
        body = result if isinstance(result, StreamingBody) else StreamingBody(result)
        self.body = body
        self.error: BaseException | None = None
        self.first = b""
        self.ended = True
        try:
            first = next(body.chunks, _END)
            if first is not _END:
                self.first, self.ended = as_bytes(first), False
        except Exception as exc:
            self.close()
            self.error = _without_own_frames(exc)

    def close(self) -> None:
        try:  # noqa: SIM105 - a generator's failing cleanup must not stop the answer
            self.body.close()
        except Exception:
            pass

    def send(
        self, conn: Any, path: str, failed: Callable[[BaseException], dict[str, Any]]
    ) -> tuple[int, bytes]:
        """Post the stream to ``path`` on ``conn`` (the runtime's connection); ``failed(exc)``
        turns an exception raised mid-stream into the error document for the trailers.
        Returns the platform's status and reply body."""
        body = self.body
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {conn._host}",
            "Lambda-Runtime-Function-Response-Mode: streaming",
            "Transfer-Encoding: chunked",
            f"Trailer: {_ERROR_TYPE}, {_ERROR_BODY}",
            f"Content-Type: {_header_safe(body.content_type)}",
        ]
        sock = _connected(conn)
        try:
            first = body.prelude + self.first
            data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
            sock.sendall(data + (_chunk(first) if first else b""))
            trailers = b""
            while not self.ended:
                try:
                    item = next(body.chunks, _END)
                    if item is _END:
                        break
                    data = as_bytes(item)
                except Exception as exc:
                    trailers = _trailers(failed(_without_own_frames(exc)))
                    break
                if data:
                    sock.sendall(_chunk(data))
            self.close()
            sock.sendall(b"0\r\n" + trailers + b"\r\n")
            status_line = conn._reader.readline(65536)
            if not status_line:
                raise ConnectionError("connection closed by the Runtime API before responding")
            status, _, reply = conn._read_response(status_line)
        except BaseException:
            self.close()
            conn.close()
            raise
        return status, reply


def _connected(conn: Any) -> socket.socket:
    """The runtime connection's socket, (re)opened like the client's own requests do."""
    if conn._sock is not None and conn._closed_by_peer():
        conn.close()
    if conn._sock is None:
        sock = socket.create_connection(conn._address)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn._sock, conn._reader = sock, sock.makefile("rb")
    opened: socket.socket = conn._sock
    return opened


def _header_safe(text: str) -> str:
    return "".join(c if " " <= c <= "~" else "?" for c in str(text))


def _trailers(document: dict[str, Any]) -> bytes:
    error_type = _header_safe(document.get("errorType") or "Function.Unknown")
    encoded = base64.b64encode(json.dumps(document).encode()).decode("ascii")
    return f"{_ERROR_TYPE}: {error_type}\r\n{_ERROR_BODY}: {encoded}\r\n".encode("latin-1")
