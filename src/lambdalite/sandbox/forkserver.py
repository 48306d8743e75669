"""Fork servers ("zygotes"): long-lived processes that fork sandbox processes on request.

The program is ``launcher.py`` (its docstring has the protocol); this is the server's side.
Use it like this::

    server = ForkServer(python, markers=["--owner=...", "--state=..."])   # plain
    server = ForkServer(python, preload=Path(".../runtimes/python/zygote.py"),
                        preload_arg="/var/runtime")                         # pre-initialized
    server.start()                       # optional: spawn() starts it when needed
    spawned = server.spawn(plan, kind="namespace")   # or kind="process"
    early = server.spawn(None, "process", {"cgroups": procs})  # forked ahead, in its cgroups
    send_plan(early, plan)                                     # ...until its plan comes
    ...                                  # watch spawned.pidfd, read spawned.ctl/output_fd
    server.close()

``plan`` is a ``marshal``-able dict. For ``namespace`` it is the sandbox plan of
``namespace.NamespaceSandboxBackend._plan`` (read by ``inside.run``); for ``process`` it holds
``argv``, ``env``, ``cwd``, ``cgroups`` (``cgroup.procs`` paths to join), ``rlimits``
(``(resource, soft, hard)`` triples, already capped) and optionally ``in_process``. With
``in_process`` set the child calls the preloaded module's ``run(argv, env)`` instead of
``exec``. A preload module is a standard-library-only file with ``preload(arg: str)``,
called once in the fork server (with ``preload_arg``), and ``run(argv, env)``, called in a
child, never returning.

The plan travels on the child's own control socket, never through the fork server (whose
memory every later child inherits). ``spawn`` is synchronous and short: the fork server forks
and answers, the child builds itself afterwards. A fork server that died is started again by
the next ``spawn``; the first request to a freshly started one waits for it to finish
preloading (``ready`` says, without waiting, whether it has). Its children outlive it: each
is watched through its pidfd and control socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import marshal
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LAUNCHER = Path(__file__).resolve().parent / "launcher.py"
_REPLY_TIMEOUT = 10.0
_SNDBUF = 1 << 20
KINDS = ("namespace", "process")


@dataclass
class Spawned:
    """A process a fork server forked: its pid, a pidfd, the server's end of its control
    socket (non-blocking) and the read end of its output pipe."""

    pid: int
    pidfd: int
    ctl: socket.socket
    output_fd: int

    def close(self) -> None:
        """Release the descriptors (the process itself is not touched)."""
        for fd in (self.pidfd, self.output_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.ctl.close()


def send_plan(spawned: Spawned, plan: dict[str, Any], trees: Sequence[int] = ()) -> None:
    """Hand ``plan`` to a child forked without one (it is waiting for it), followed by the
    mount trees it attaches (``mounttree.py``), if any."""
    _send_plan(spawned.ctl, plan, trees)


def _send_plan(sock: socket.socket, plan: dict[str, Any], trees: Sequence[int]) -> None:
    # One message: the sandbox starts on the plan at once and must not wait for the rest.
    data = marshal.dumps({**plan, "trees": len(trees)} if trees else plan)
    if trees:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _pack(*trees))])
    else:
        sock.send(data)


def has_exited(pidfd: int) -> bool:
    """Whether the process behind ``pidfd`` has ended (a pidfd turns readable then), asked
    without waiting: the loop may not have run its reader yet."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


def close_watched(loop: asyncio.AbstractEventLoop, sock: socket.socket | None) -> None:
    """Stop watching ``sock`` on ``loop`` (if it was) and close it; None does nothing."""
    if sock is None:
        return
    with contextlib.suppress(Exception):
        loop.remove_reader(sock.fileno())
    sock.close()


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
        found.append((data, descriptors(ancillary)))


def descriptors(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors of the ``SCM_RIGHTS`` parts of ``ancillary``."""
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(
                int.from_bytes(payload[i : i + 4], sys.byteorder, signed=True)
                for i in range(0, usable, 4)
            )
    return fds


class ForkServer:
    """One fork server process and the socket to it."""

    def __init__(
        self,
        python: str,
        markers: Sequence[str] = (),
        preload: Path | None = None,
        preload_arg: str = "",
    ) -> None:
        self.python = python
        self._markers = list(markers)  # extra arguments naming the owner, for leftover sweeps
        self.preload = preload
        self._preload_arg = preload_arg
        self._popen: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._ready = False
        self.starts = 0  # how many times it was started (restarts included)
        self.started_at = 0.0  # time.monotonic() of the last start
        # One exchange on the socket at a time: children are also forked ahead of need from
        # a worker thread (see ``ahead.py``).
        self._lock = threading.RLock()

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def ready(self) -> bool:
        """Whether the fork server has finished starting; never waits."""
        if self._ready or not self._lock.acquire(blocking=False):
            return self._ready
        try:
            sock = self._sock
            if self._ready or sock is None:
                return self._ready
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
            if not poller.poll(0):
                return False
            return self._take_ready(sock)
        finally:
            self._lock.release()

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the fork server to finish starting."""
        with self._lock:
            sock = self._sock
            if self._ready or sock is None:
                return self._ready
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
            if not poller.poll(int(timeout * 1000)):
                return False
            return self._take_ready(sock)

    def _take_ready(self, sock: socket.socket) -> bool:
        try:
            self._ready = sock.recv(64) == b"ready"
        except OSError:
            self._ready = False
        return self._ready

    def argv(self, fd: int) -> list[str]:
        # -I: no user site, no PYTHON* variables, no script directory on sys.path. A preloading
        # server keeps the site module, so its children see site-packages as a new interpreter
        # of the function would; a plain one needs nothing of it.
        argv = [self.python, "-I"] + ([] if self.preload else ["-S"])
        argv += [str(LAUNCHER), "zygote", str(fd)]
        if self.preload is not None:
            argv += [f"--preload={self.preload}", f"--preload-arg={self._preload_arg}"]
        return argv + self._markers

    def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SNDBUF)
            self._popen = subprocess.Popen(
                self.argv(theirs.fileno()),
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
        self._ready = False
        self.starts += 1
        self.started_at = time.monotonic()

    def spawn(
        self,
        plan: dict[str, Any] | None,
        kind: str = "namespace",
        prelude: dict[str, Any] | None = None,
        trees: Sequence[int] = (),
    ) -> Spawned:
        """Have the fork server fork a child of ``kind`` for ``plan`` (and the mount
        ``trees`` it attaches). The ``prelude`` is what the child does first (see
        ``launcher.py``); without a plan the child then waits for one, sent later with
        ``send_plan``."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        with self._lock:
            return self._spawn(plan, kind, prelude, trees)

    def _spawn(
        self,
        plan: dict[str, Any] | None,
        kind: str,
        prelude: dict[str, Any] | None,
        trees: Sequence[int] = (),
    ) -> Spawned:
        if not self.running:
            if self._popen is not None:
                log.warning(
                    "fork server %s exited (%s); restarting it", self.python, self._popen.returncode
                )
            self.close()
            self.start()
        sock = self._sock
        assert sock is not None
        if not self._ready and not self._take_ready(sock):  # waits, up to the reply timeout
            self.close()
            raise OSError(errno.EIO, f"fork server {self.python} did not start")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SNDBUF)
            # They wait in the socket for the child.
            ours.send(marshal.dumps(prelude or {"cgroups": []}))
            if plan is not None:
                _send_plan(ours, plan, trees)
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _pack(theirs.fileno(), write_fd))]
            sock.sendmsg([kind.encode()], rights)
            data, ancillary, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(4))
            fds = descriptors(ancillary)
            if not data.startswith(b"pid ") or not fds:
                for fd in fds:
                    os.close(fd)
                if not data:
                    self.close()  # the fork server is gone; the next request restarts it
                raise OSError(errno.EIO, data.decode(errors="replace") or "fork server vanished")
        except BaseException as exc:
            ours.close()
            os.close(read_fd)
            if isinstance(exc, (TimeoutError, socket.timeout)):
                self.close()  # a late answer would pair with the next request
            raise
        finally:
            theirs.close()
            os.close(write_fd)
        ours.setblocking(False)
        return Spawned(int(data[4:]), fds[0], ours, read_fd)

    def close(self) -> None:
        """Stop the fork server (its children live on until their own sockets close)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
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
