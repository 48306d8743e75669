"""Turning a sandbox's output pipe into lines, on the event loop, without losing order.

The pipe is read non-blocking from a loop reader callback. ``drain`` reads whatever the pipe
holds *right now*, synchronously: a caller that just learned (over another channel) that the
program reached some point uses it to deliver everything the program printed before that point.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from lambdalite.sandbox.base import OutputCallback

# One log event holds at most 256 KB; longer runs without a newline are cut there.
MAX_LINE = 256 * 1024
_CHUNK = 65536
# Bytes read per loop callback, so a chatty program cannot monopolise the loop.
_PER_CALLBACK = 1024 * 1024


class LinePump:
    def __init__(self, fd: int, callback: OutputCallback, loop: asyncio.AbstractEventLoop) -> None:
        self._fd: int | None = fd
        self._callback = callback
        self._loop = loop
        self._buffer = bytearray()
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._on_readable)

    @property
    def closed(self) -> bool:
        return self._fd is None

    def _on_readable(self) -> None:
        self._read(_PER_CALLBACK)

    def drain(self, flush_partial: bool = False) -> None:
        # The pipe holds at most its capacity; the bound only guards against a writer that
        # refills it as fast as it is read.
        self._read(16 * _PER_CALLBACK)
        if flush_partial and self._buffer:
            self._emit(bytes(self._buffer))
            self._buffer.clear()

    def _read(self, budget: int) -> None:
        fd = self._fd
        while fd is not None and budget > 0:
            try:
                data = os.read(fd, _CHUNK)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self.close()
                break
            budget -= len(data)
            self._split(data)

    def _split(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            # A line may have grown past the cap across reads: cut it the same way.
            while end - start > MAX_LINE:
                self._emit(bytes(buffer[start : start + MAX_LINE]))
                start += MAX_LINE
            self._emit(bytes(buffer[start:end]))
            start = end + 1
        del buffer[:start]
        while len(buffer) >= MAX_LINE:
            self._emit(bytes(buffer[:MAX_LINE]))
            del buffer[:MAX_LINE]

    def _emit(self, raw: bytes) -> None:
        self._callback(raw.decode("utf-8", "replace"))

    def close(self) -> None:
        """Stop reading; an unterminated last line is delivered. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(Exception):
            self._loop.remove_reader(fd)
        os.close(fd)
        if self._buffer:
            self._emit(bytes(self._buffer))
            self._buffer.clear()
