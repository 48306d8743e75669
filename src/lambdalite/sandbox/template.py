"""SnapStart templates: an initialized runtime process that forks ready copies of itself.

A template is started like any sandbox's program, plus a ``SOCK_SEQPACKET`` control socket
whose descriptor number it finds in ``_LAMBDALITE_SNAPSTART_FD``. After its INIT (and the
function's before-snapshot hooks) it stops talking to the Runtime API and waits for fork
requests on that socket (``runtimes/python/snapstart.py`` is the other end). A request is JSON
(the copy's environment variables, cgroups to join, rlimits) with the copy's output pipe
attached; the answer is ``pid <n>``, and ``exit <n> <status>`` follows when that copy ends.

What a copy gets from here is what a process sandbox gets: a session of its own, its own
cgroups with the version's limits, its own output pipe. The server holds a pidfd for it (it is
the template's child, not ours) and learns its exit status from the template.

This module covers the process backend. In namespace sandboxes a copy enters fresh namespaces
under an identity of its own, which the template can only be trusted to do because it was
confined to a user namespace from the start: see ``namespace_template.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import resource
import select
import signal
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

from lambdalite.sandbox import cgroups
from lambdalite.sandbox.base import Limits, OutputCallback
from lambdalite.sandbox.forkserver import close_watched, has_exited, receive
from lambdalite.sandbox.output import LinePump
from lambdalite.sandbox.process import ProcessSandbox, ProcessSandboxBackend, _child_setup

log = logging.getLogger(__name__)

CONTROL_FD = "_LAMBDALITE_SNAPSTART_FD"
_REPLY_TIMEOUT = 5.0
_STATUS_WAIT = 2.0  # how long a copy's exit status may trail its pidfd
_MIB = 1024 * 1024


class TemplateUnsupported(Exception):
    """The backend cannot host SnapStart templates; the message says why."""


def spawn_template(
    backend: ProcessSandboxBackend,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    limits: Limits,
    on_output: OutputCallback,
    label: str = "",
) -> TemplateSandbox:
    """Start ``argv`` as a template (a process sandbox holding the control socket)."""
    if type(backend) is not ProcessSandboxBackend:
        raise TemplateUnsupported(
            f"SnapStart templates need the process sandbox; this server uses {backend.isolation}"
        )
    backend.prepare()
    loop = asyncio.get_running_loop()
    group = backend._new_cgroup(f"{label}-template", limits)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        popen = subprocess.Popen(
            list(argv),
            env={**env, CONTROL_FD: str(theirs.fileno())},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            start_new_session=True,
            pass_fds=(theirs.fileno(),),
            preexec_fn=_child_setup(group.procs_files() if group else [], limits),
        )
    except BaseException as exc:
        os.close(read_fd)
        ours.close()
        if group is not None:
            group.remove()
        if isinstance(exc, subprocess.SubprocessError):
            raise OSError(f"cannot start {argv[0]!r}: {exc}") from exc
        raise
    finally:
        os.close(write_fd)
        theirs.close()
    pump = LinePump(read_fd, on_output, loop)
    sandbox = TemplateSandbox(backend, popen, pump, group, limits, ours)
    # Polling counts a process's descendants as its own, and the template's descendants are
    # every copy it forked: each copy is limited (and polled) as the sandbox it is instead.
    sandbox.polled_enforcement = False
    backend._track(sandbox)
    return sandbox


class _Standby:
    """A copy forked ahead, already in its cgroups, waiting to be handed an environment."""

    def __init__(self, reply: list[bytes], group: cgroups.Cgroup | None, limits: Limits) -> None:
        self.reply = reply  # filled with the template's answer (``pid <n>``)
        self.group = group
        self.limits = limits

    @property
    def pid(self) -> int | None:
        answer = self.reply[0] if self.reply else b""
        return int(answer[4:]) if answer.startswith(b"pid ") else None


class TemplateSandbox(ProcessSandbox):
    """The template's process, and the factory of its restored copies.

    Requests are answered in order; each request in flight has a slot (a list) that the
    answer fills. One standby copy is kept ready once a restore has been asked for, so the
    next restore skips the slow cgroup moves.
    """

    def __init__(
        self,
        backend: ProcessSandboxBackend,
        popen: subprocess.Popen[bytes],
        pump: LinePump,
        group: cgroups.Cgroup | None,
        limits: Limits,
        ctl: socket.socket,
    ) -> None:
        super().__init__(backend, popen, pump, group, limits)
        self._ctl: socket.socket | None = ctl
        self._statuses: dict[int, int] = {}  # exit status of each copy, by pid
        self._slots: deque[list[bytes]] = deque()
        self._standby: _Standby | None = None
        self._refill: asyncio.TimerHandle | None = None
        # Resolved when the runtime says it serves fork requests (after its snapshot point).
        self.serving: asyncio.Future[None] = self._loop.create_future()
        ctl.setblocking(False)
        self._loop.add_reader(ctl.fileno(), self._read_control)

    # -- control socket -------------------------------------------------------------------
    def _read_control(self) -> None:
        ctl = self._ctl
        if ctl is None:
            return
        messages, closed = receive(ctl)
        for message, fds in messages:
            for fd in fds:
                os.close(fd)
            if message.startswith(b"exit "):
                pid, _, code = message[5:].partition(b" ")
                self._statuses[int(pid)] = int(code)
            elif message == b"serving":
                if not self.serving.done():
                    self.serving.set_result(None)
            elif self._slots:
                slot = self._slots.popleft()
                slot.append(message)
                if message.startswith(b"error "):
                    log.warning("SnapStart template: %s", message[6:].decode(errors="replace"))
        if closed:
            self._close_control()

    def _close_control(self) -> None:
        ctl, self._ctl = self._ctl, None
        close_watched(self._loop, ctl)

    @property
    def gone(self) -> bool:
        """Whether the template has exited, even if the loop has not heard of it yet."""
        self._read_control()
        if self._ctl is None or self._exited.done():
            return True
        return self._pidfd is not None and has_exited(self._pidfd)

    def status_of(self, pid: int) -> int | None:
        """The exit status the template reported for its copy ``pid``, if it did yet."""
        self._read_control()
        return self._statuses.pop(pid, None)

    def _send(self, request: dict[str, object], fd: int | None = None) -> list[bytes]:
        ctl = self._ctl
        if ctl is None or self._exited.done():
            raise OSError(errno.ESRCH, "the SnapStart template is gone")
        rights = []
        if fd is not None:
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))]
        slot: list[bytes] = []
        ctl.sendmsg([json.dumps(request).encode()], rights)
        self._slots.append(slot)
        return slot

    def _wait(self, slot: list[bytes]) -> bytes:
        """The answer in ``slot``, waiting for it (the template answers in milliseconds)."""
        poller = select.poll()
        deadline = self._loop.time() + _REPLY_TIMEOUT
        while not slot:
            self._read_control()
            remaining = deadline - self._loop.time()
            if slot:
                break
            if self._ctl is None or remaining <= 0:
                raise OSError(errno.EIO, "the SnapStart template did not answer")
            poller.register(self._ctl.fileno(), select.POLLIN)
            poller.poll(remaining * 1000)
        if not slot[0].startswith(b"pid "):
            raise OSError(errno.EIO, slot[0].decode(errors="replace"))
        return slot[0]

    # -- forking --------------------------------------------------------------------------
    def fork(
        self, env: Mapping[str, str], on_output: OutputCallback, limits: Limits, label: str = ""
    ) -> RestoredSandbox:
        """A new copy of the template with ``env``, in a sandbox of its own (synchronous: the
        template answers within milliseconds). Raises ``OSError`` when it cannot."""
        backend = self._backend
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        group: cgroups.Cgroup | None = None
        try:
            standby = self._take_standby(limits)
            if standby is not None:
                pid, group = standby
                self._send({"kind": "go", "pid": pid, "env": dict(env)}, write_fd)
            else:
                group = backend._new_cgroup(label, limits)
                request = {"kind": "fork", "env": dict(env), **_placement(group, limits)}
                pid = int(self._wait(self._send(request, write_fd))[4:])
        except BaseException:
            os.close(read_fd)
            if group is not None:
                group.remove()
            raise
        finally:
            os.close(write_fd)
        self._schedule_refill(limits)
        pump = LinePump(read_fd, on_output, self._loop)
        sandbox = RestoredSandbox(backend, self, pid, pump, group, limits)
        sandbox.polled_enforcement = group is None and backend.mode != "off"
        backend._track(sandbox)
        return sandbox

    def _take_standby(self, limits: Limits) -> tuple[int, cgroups.Cgroup | None] | None:
        standby, self._standby = self._standby, None
        if standby is None:
            return None
        self._read_control()
        pid = standby.pid
        if pid is None or standby.limits != limits or self.status_of(pid) is not None:
            self._discard(standby)
            return None
        return pid, standby.group

    def keep_standby(self, limits: Limits) -> None:
        """Have a copy for ``limits`` ready ahead of the first restore."""
        self._schedule_refill(limits)

    def _schedule_refill(self, limits: Limits) -> None:
        """Fork the next standby once the loop is free (not on this restore's path)."""
        if self._refill is None and self._standby is None:
            self._refill = self._loop.call_later(0.01, self._fill, limits)

    def _fill(self, limits: Limits) -> None:
        self._refill = None
        if self._standby is not None or self._ctl is None or self._exited.done():
            return
        group = self._backend._new_cgroup("snap-standby", limits)
        try:
            slot = self._send({"kind": "standby", **_placement(group, limits)})
        except OSError:
            if group is not None:
                group.remove()
            return
        self._standby = _Standby(slot, group, limits)

    def _discard(self, standby: _Standby) -> None:
        pid = standby.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if standby.group is not None:
            self._loop.create_task(standby.group.dispose())

    async def _destroy(self) -> None:
        if self._refill is not None:
            self._refill.cancel()
            self._refill = None
        standby, self._standby = self._standby, None
        if standby is not None:
            self._read_control()
            self._discard(standby)
        try:
            await super()._destroy()
        finally:
            self._close_control()


class RestoredSandbox(ProcessSandbox):
    """One copy forked from a template: a process sandbox whose program we did not start."""

    def __init__(
        self,
        backend: ProcessSandboxBackend,
        template: TemplateSandbox,
        pid: int,
        pump: LinePump,
        group: cgroups.Cgroup | None,
        limits: Limits,
    ) -> None:
        self._template = template
        self._child = pid
        self._waited = 0.0
        super().__init__(backend, None, pump, group, limits)
        self._pid = pid

    def _watch_exit(self) -> None:
        try:
            self._pidfd = os.pidfd_open(self._child)
        except OSError:  # already gone and reaped
            self._loop.call_soon(self._reap)
            return
        self._loop.add_reader(self._pidfd, self._reap)

    def _reap(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if self._exited.done():
            return
        code = self._template.status_of(self._child)
        if code is None and self._waited < _STATUS_WAIT and not self._template.gone:
            self._waited += 0.005  # the template reaps it in a moment and says how it ended
            self._loop.call_later(0.005, self._reap)
            return
        self._exited.set_result(code if code is not None else -signal.SIGKILL)


def _placement(group: cgroups.Cgroup | None, limits: Limits) -> dict[str, object]:
    """What a copy joins and sets before it runs anything."""
    procs = [os.fsdecode(p) for p in group.procs_files()] if group else []
    return {"cgroups": procs, "rlimits": _rlimits(limits)}


def _rlimits(limits: Limits) -> list[tuple[int, int, int]]:
    """The process backend's rlimits, capped by what the template may still set."""
    found = []
    for res, value in (
        (resource.RLIMIT_NOFILE, limits.nofile),
        (resource.RLIMIT_FSIZE, limits.ephemeral_mb * _MIB),
    ):
        _soft, hard = resource.getrlimit(res)
        capped = value if hard == resource.RLIM_INFINITY else min(value, hard)
        found.append((res, capped, capped))
    return found
