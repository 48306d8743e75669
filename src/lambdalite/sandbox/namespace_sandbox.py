"""One namespace sandbox as the server sees it: its init's pidfd, control socket and exit.

``namespace.NamespaceSandboxBackend`` builds these; see that module for what a namespace
sandbox is made of.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from typing import TYPE_CHECKING

from lambdalite.sandbox import cgroups, peers
from lambdalite.sandbox.base import Limits, PeerSocket
from lambdalite.sandbox.forkserver import Spawned, close_watched, receive
from lambdalite.sandbox.output import LinePump
from lambdalite.sandbox.process import ProcessSandbox

if TYPE_CHECKING:
    from lambdalite.sandbox.namespace import NamespaceSandboxBackend

log = logging.getLogger(__name__)

_SETUP_FAILED = 125  # the init's status when building the sandbox failed


class NamespaceSandbox(ProcessSandbox):
    """One namespace sandbox, seen from the server through its init process."""

    def __init__(
        self,
        backend: NamespaceSandboxBackend,
        spawned: Spawned,
        pump: LinePump,
        group: cgroups.Cgroup | None,
        limits: Limits,
        uid: int,
    ) -> None:
        self._ns_backend = backend
        self._init_pidfd: int | None = spawned.pidfd
        self._ctl: socket.socket | None = spawned.ctl
        self.uid = uid
        self._reported: int | None = None
        self._listener: asyncio.Future[socket.socket | None] = (
            asyncio.get_running_loop().create_future()
        )
        super().__init__(backend, None, pump, group, limits)
        self._pid = spawned.pid
        self.uncounted.add(spawned.pid)
        if self._ctl is not None:
            self._loop.add_reader(self._ctl.fileno(), self._read_control)

    # -- exit -----------------------------------------------------------------------------
    def _watch_exit(self) -> None:
        # The init is the launcher's child, not ours: its pidfd says when it is gone, and
        # the status that matters (the runtime's) comes over the control socket.
        assert self._init_pidfd is not None
        self._loop.add_reader(self._init_pidfd, self._reap)

    def _reap(self) -> None:
        pidfd, self._init_pidfd = self._init_pidfd, None
        if pidfd is not None:
            self._loop.remove_reader(pidfd)
            os.close(pidfd)
        if not self._exited.done():
            self._exited.set_result(self._exit_code(0))

    # -- control messages -----------------------------------------------------------------
    def _read_control(self) -> None:
        ctl = self._ctl
        if ctl is None:
            return
        messages, closed = receive(ctl)
        for message, fds in messages:
            self._on_message(message, fds)
        if closed or self._exited.done():
            self._close_control()

    def _on_message(self, message: bytes, fds: list[int]) -> None:
        """One message of the init: the Runtime API listener (isolated networking), the
        program's exit status, or why building the sandbox failed."""
        if message == b"listen" and fds:
            listener = socket.socket(fileno=fds.pop(0))
            if self._listener.done():
                listener.close()
            else:
                self._listener.set_result(listener)
        elif message.startswith(b"exit "):
            self._reported = int(message[5:])
        elif message.startswith(b"error "):
            log.warning("%s", message[6:].decode(errors="replace"))
            self._reported = _SETUP_FAILED
        for fd in fds:
            os.close(fd)

    def _close_control(self) -> None:
        ctl, self._ctl = self._ctl, None
        if ctl is None:
            return
        close_watched(self._loop, ctl)
        if not self._listener.done():
            self._listener.set_result(None)

    def _exit_code(self, code: int) -> int:
        # The init reports the runtime's status just before it exits; the message is in the
        # socket by the time the pidfd says the init is gone. No report: it was killed.
        self._read_control()
        self._close_control()
        return self._reported if self._reported is not None else -signal.SIGKILL

    async def runtime_api_socket(self) -> socket.socket | None:
        return await asyncio.shield(self._listener)

    def owns_connection(self, conn: PeerSocket) -> bool:
        if not self._ns_backend._check_peers:
            return True
        return peers.peer_uid(conn) == self.uid

    # -- memory and teardown --------------------------------------------------------------
    def _spawned_high_water(self) -> int:
        return 0  # the spawned process is the init; the cgroup or polling has the figure

    def kill(self) -> None:
        if self._exited.done() or self._init_pidfd is None:
            return
        with contextlib.suppress(ProcessLookupError, OSError):
            # The kernel takes every process of the PID namespace down with its init.
            signal.pidfd_send_signal(self._init_pidfd, signal.SIGKILL)

    def _alive_members(self) -> set[int]:
        members = set(self.cgroup.pids()) if self.cgroup is not None else set()
        if not self._exited.done():
            members.add(self.pid)
        return members

    async def _destroy(self) -> None:
        try:
            await super()._destroy()
        finally:
            self._close_control()
            self._ns_backend._release_uid(self.uid)
