"""A deliberately small HTTP/1.1 client, blocking and asyncio flavours, for measuring servers.

General-purpose clients spend more time per request than the servers under test do on their
warm path (tens to hundreds of microseconds of header handling and object churn), and on a
two-core machine a load generator's CPU is taken straight from the server. This client writes
one prebuilt request per call over a kept-alive connection and parses only what it needs:
status, headers and a ``Content-Length`` (or chunked) body.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass


class HttpError(Exception):
    """The connection broke or the response could not be parsed."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes


def build_request(
    method: str, path: str, host: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    try:
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
    except (ValueError, IndexError) as exc:
        raise HttpError(f"bad status line in {head[:80]!r}") from exc
    headers: dict[str, str] = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


class HttpConnection:
    """One blocking keep-alive connection; reconnects transparently if the server closed it."""

    def __init__(self, host: str, port: int, timeout: float = 120.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._buf = sock, b""
        return sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def send(self, raw_request: bytes) -> Response:
        """Send a request built by ``build_request`` and read the whole response."""
        sock = self._sock or self._connect()
        try:
            sock.sendall(raw_request)
            return self._read_response(sock)
        except (OSError, HttpError):
            self.close()
            raise

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        return self.send(build_request(method, path, f"{self.host}:{self.port}", body, headers))

    def _read_until(self, sock: socket.socket, marker: bytes) -> bytes:
        while marker not in self._buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise HttpError("connection closed by the server")
            self._buf += chunk
        head, _, self._buf = self._buf.partition(marker)
        return head

    def _read_exactly(self, sock: socket.socket, size: int) -> bytes:
        while len(self._buf) < size:
            chunk = sock.recv(max(65536, size - len(self._buf)))
            if not chunk:
                raise HttpError("connection closed by the server")
            self._buf += chunk
        data, self._buf = self._buf[:size], self._buf[size:]
        return data

    def _read_response(self, sock: socket.socket) -> Response:
        status, headers = parse_head(self._read_until(sock, b"\r\n\r\n"))
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self._read_until(sock, b"\r\n").split(b";")[0], 16)
                parts.append(self._read_exactly(sock, size + 2)[:size])
                if size == 0:
                    break
            body = b"".join(parts)
        else:
            body = self._read_exactly(sock, int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, headers, body)


class AsyncHttpConnection:
    """The asyncio counterpart, for load generation with many connections on one loop."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._reader = None

    async def send(self, raw_request: bytes) -> Response:
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, limit=1 << 22
            )
        reader, writer = self._reader, self._writer
        try:
            writer.write(raw_request)
            head = await reader.readuntil(b"\r\n\r\n")
            status, headers = parse_head(head[:-4])
            if headers.get("transfer-encoding", "").lower() == "chunked":
                parts = []
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    parts.append((await reader.readexactly(size + 2))[:size])
                    if size == 0:
                        break
                body = b"".join(parts)
            else:
                body = await reader.readexactly(int(headers.get("content-length", "0")))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            await self.close()
            raise HttpError(str(exc) or type(exc).__name__) from exc
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Response(status, headers, body)
