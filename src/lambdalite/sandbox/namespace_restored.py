"""A restored SnapStart copy in a namespace sandbox, as the server sees it.

``namespace_template.NamespaceTemplate.fork`` makes these. The copy builds its own sandbox
(``runtimes/python/snapcopy.py``); its process 1 says ``hello`` on its control socket first,
and the kernel attaches a pidfd for the sender to that message (``SO_PASSPIDFD``, set by the
template on the server's end): that is how the server learns the host pid of a process in
nested namespaces without trusting anything the template says. Until then the copy is known
by its socket only: closing it makes the copy give up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING

from lambdalite.sandbox import cgroups
from lambdalite.sandbox.base import Limits
from lambdalite.sandbox.namespace_sandbox import NamespaceSandbox
from lambdalite.sandbox.output import LinePump
from lambdalite.sandbox.zygote import Spawned

if TYPE_CHECKING:
    from lambdalite.sandbox.namespace_template import NamespaceTemplate

SO_PASSCRED, SO_PASSPIDFD, _SCM_PIDFD = 16, 76, 4


class RestoredNamespaceSandbox(NamespaceSandbox):
    """One restored copy: its init is known by the pidfd that came with its ``hello``."""

    def __init__(
        self,
        template: NamespaceTemplate,
        spawned: Spawned,
        pump: LinePump,
        group: cgroups.Cgroup | None,
        limits: Limits,
        inner: int,
    ) -> None:
        self._template = template
        self.inner = inner
        super().__init__(template._ns_backend, spawned, pump, group, limits, template.base + inner)
        self.uncounted.discard(0)

    def _watch_exit(self) -> None:
        self._init_pidfd = None  # until the copy's init says hello

    def _read_control(self) -> None:
        ctl = self._ctl
        if ctl is None:
            return
        messages, closed = _receive_with_pidfds(ctl)
        rest: list[tuple[bytes, list[int]]] = []
        for message, fds, pidfds in messages:
            if message == b"hello" and pidfds and self._init_pidfd is None and self._pid == 0:
                self._hello(pidfds.pop(0))
            for fd in pidfds:
                os.close(fd)
            rest.append((message, fds))
        for message, fds in rest:
            self._on_message(message, fds)
        if closed and self._init_pidfd is None and not self._exited.done():
            self._close_control()  # gone before it said hello
            self._exited.set_result(self._reported or -signal.SIGKILL)
        elif closed or self._exited.done():
            self._close_control()

    def _hello(self, pidfd: int) -> None:
        pid = _pid_of(pidfd)
        if pid <= 0:
            os.close(pidfd)
            return
        self._pid = pid
        self._init_pidfd = pidfd
        self.uncounted.add(pid)
        self._loop.add_reader(pidfd, self._reap)

    def kill(self) -> None:
        if self._exited.done():
            return
        if self._init_pidfd is None:
            # Not started yet: without its socket the copy's init gives up at once.
            self._close_control()
            self._exited.set_result(-signal.SIGKILL)
            return
        super().kill()

    def _alive_members(self) -> set[int]:
        members = set(self.cgroup.pids()) if self.cgroup is not None else set()
        if not self._exited.done() and self._pid > 0:
            members.add(self._pid)
        return members

    async def _destroy(self) -> None:
        try:
            await super()._destroy()
        finally:
            self._template.release(self.inner)


def _receive_with_pidfds(
    ctl: socket.socket,
) -> tuple[list[tuple[bytes, list[int], list[int]]], bool]:
    """Like ``zygote.receive``, also collecting the pidfds (or pids, opened as pidfds) the
    kernel attaches for the sender."""
    found: list[tuple[bytes, list[int], list[int]]] = []
    while True:
        try:
            data, ancillary, _flags, _addr = ctl.recvmsg(
                1 << 16, socket.CMSG_SPACE(4 * 4) + socket.CMSG_SPACE(16), socket.MSG_CMSG_CLOEXEC
            )
        except (BlockingIOError, InterruptedError):
            return found, False
        except OSError:
            return found, True
        if not data and not ancillary:
            return found, True
        fds: list[int] = []
        pidfds: list[int] = []
        for level, kind, payload in ancillary:
            if level != socket.SOL_SOCKET:
                continue
            if kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                fds.extend(
                    int.from_bytes(payload[i : i + 4], sys.byteorder, signed=True)
                    for i in range(0, usable, 4)
                )
            elif kind == _SCM_PIDFD and len(payload) >= 4:
                pidfds.append(int.from_bytes(payload[:4], sys.byteorder, signed=True))
            elif kind == socket.SCM_CREDENTIALS and len(payload) >= 4:
                pid = int.from_bytes(payload[:4], sys.byteorder, signed=True)
                with contextlib.suppress(OSError):
                    pidfds.append(os.pidfd_open(pid))
        found.append((data, fds, pidfds))


def _pid_of(pidfd: int) -> int:
    """The host pid a pidfd names (its ``fdinfo``), 0 when it is gone."""
    try:
        with open(f"/proc/self/fdinfo/{pidfd}", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0
