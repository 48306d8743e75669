"""The server's side of the sandbox launcher (``launcher.py``): start it, ask it for sandboxes.

One launcher runs per backend. A request is synchronous and short (the launcher forks and
answers; the sandbox builds itself afterwards, concurrently), so ``spawn`` simply waits for
the answer with a deadline. A launcher that died is started again on the next request.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import marshal
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambdalite.sandbox.cgroups import owner_token

log = logging.getLogger(__name__)

LAUNCHER = Path(__file__).resolve().parent / "launcher.py"
_REPLY_TIMEOUT = 10.0
_SNDBUF = 1 << 20


@dataclass
class Spawned:
    """A sandbox init the launcher forked: its pid, a pidfd, the server's end of its control
    socket (non-blocking) and the read end of its output pipe."""

    pid: int
    pidfd: int
    ctl: socket.socket
    output_fd: int

    def close(self) -> None:
        """Release the descriptors (the sandbox itself is not touched)."""
        for fd in (self.pidfd, self.output_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.ctl.close()


def receive(ctl: socket.socket) -> tuple[list[tuple[bytes, list[int]]], bool]:
    """Every message waiting on a (non-blocking) SEQPACKET socket, with the descriptors
    passed along, and whether the other end has closed."""
    found: list[tuple[bytes, list[int]]] = []
    while True:
        try:
            data, ancillary, _flags, _addr = ctl.recvmsg(
                1 << 16, socket.CMSG_SPACE(4 * 4), socket.MSG_CMSG_CLOEXEC
            )
        except (BlockingIOError, InterruptedError):
            return found, False
        except OSError:
            return found, True
        if not data and not ancillary:
            return found, True  # no message is ever empty: this is the end of the stream
        found.append((data, _descriptors(ancillary)))


def _descriptors(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(
                int.from_bytes(payload[i : i + 4], sys.byteorder, signed=True)
                for i in range(0, usable, 4)
            )
    return fds


class Zygote:
    """The launcher process and the socket to it."""

    def __init__(self, python: str, markers: list[str]) -> None:
        self._python = python
        self._markers = markers  # extra arguments naming the owner, for leftover sweeps
        self._popen: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SNDBUF)
            argv = [self._python, "-I", "-S", str(LAUNCHER), "zygote", str(theirs.fileno())]
            self._popen = subprocess.Popen(
                argv + self._markers,
                env={},
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.settimeout(_REPLY_TIMEOUT)
        self._sock = ours

    def spawn(self, plan: dict[str, Any]) -> Spawned:
        """Have the launcher fork the init of a sandbox for ``plan``."""
        if self._popen is None or self._popen.poll() is not None:
            if self._popen is not None:
                log.warning("sandbox launcher exited (%s); restarting it", self._popen.returncode)
            self.close()
            self.start()
        sock = self._sock
        assert sock is not None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _pack(theirs.fileno(), write_fd))]
            sock.sendmsg([marshal.dumps(plan)], rights)
            data, ancillary, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(4))
            fds = _descriptors(ancillary)
            if not data.startswith(b"pid ") or not fds:
                for fd in fds:
                    os.close(fd)
                if not data:
                    self.close()  # the launcher is gone; the next request restarts it
                raise OSError(errno.EIO, data.decode(errors="replace") or "launcher vanished")
        except BaseException as exc:
            ours.close()
            os.close(read_fd)
            if isinstance(exc, TimeoutError):
                self.close()  # a late answer would pair with the next request
            raise
        finally:
            theirs.close()
            os.close(write_fd)
        ours.setblocking(False)
        return Spawned(int(data[4:]), fds[0], ours, read_fd)

    def close(self) -> None:
        """Stop the launcher (its sandboxes live on until their own sockets close)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        popen, self._popen = self._popen, None
        if popen is not None:
            try:
                popen.wait(timeout=2)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()


def _pack(*fds: int) -> bytes:
    return b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)


def sweep_launchers(state: Path, owner: str) -> None:
    """Kill the launchers and sandboxes left by a crashed server of this data directory
    (``state``). They exit by themselves once their server is gone; this catches any that
    could not. Live servers' processes, and other data directories', are left alone."""
    marker = f"--state={state}".encode()
    me = f"--owner={owner}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(LAUNCHER).encode() not in args or marker not in args or me in args:
            continue
        token = next((a[8:] for a in args if a.startswith(b"--owner=")), b"").decode()
        pid_text = token.split("-", 1)[0]
        if pid_text.isdigit() and owner_token(int(pid_text)) == token:
            continue  # its server is alive
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(entry.name), signal.SIGKILL)
            log.info("killed leftover sandbox process %s of a stopped server", entry.name)
