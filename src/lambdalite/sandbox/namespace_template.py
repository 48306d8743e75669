"""SnapStart templates in namespace sandboxes, and the sandboxes of their restored copies.

A template is a namespace sandbox built as usual, except that its program runs as root of a
user namespace of its own: the init maps the namespace's ids 0..65535 onto a block of host
ids no other sandbox uses (``_BLOCK_RANGE``, apart from the per-sandbox uids of
``namespace.py``), so what the template does is unprivileged on the host. It keeps only the
capabilities (inside that namespace) that building a copy needs, under a seccomp filter that
lets ``unshare`` and ``mount`` through (``seccomp.build_template``). Its SnapStart control
socket follows the plan on the init's control socket, and process 2 inherits it.

A restore asks the template for a ``copy`` with one end of a fresh socket, on which the
server has queued the copy's prelude (its inner uid, limits, the strict seccomp program and
descriptors of its cgroups' ``cgroup.procs`` files). The copy builds its sandbox from
inside (``runtimes/python/snapcopy.py``): own mount, PID, IPC and UTS namespaces (network too
when isolated), fresh ``/tmp`` and ``/proc``, its own uid, no capabilities, strict seccomp,
its own cgroups. Its init says ``hello`` on the socket, and the server, which set
``SO_PASSPIDFD`` on its end, receives a pidfd for it with that message: the host pid of a
process in nested namespaces, without trusting anything the template says. From then on the
copy is watched like any namespace sandbox: pidfd, control socket, reported exit status.

One copy is kept forked ahead, in its cgroups and namespaces, waiting only for its
environment's variables and output pipe: joining a cgroup waits for an RCU grace period.

A copy lives in a PID namespace nested in the template's: if the template's sandbox ends,
its copies end with it (their environments see the runtime exit, as after a crash).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import marshal
import os
import secrets
import select
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lambdalite.sandbox import cgroups, mounts, seccomp
from lambdalite.sandbox.base import Limits, OutputCallback
from lambdalite.sandbox.forkserver import Spawned, close_watched, has_exited, receive
from lambdalite.sandbox.namespace_restored import (
    SO_PASSCRED,
    SO_PASSPIDFD,
    RestoredNamespaceSandbox,
)
from lambdalite.sandbox.namespace_sandbox import NamespaceSandbox
from lambdalite.sandbox.output import LinePump

if TYPE_CHECKING:
    from lambdalite.sandbox.namespace import NamespaceSandboxBackend

log = logging.getLogger(__name__)

CONTROL_FD = "_LAMBDALITE_SNAPSTART_FD"
BLOCK = 1 << 16  # ids of one template's user namespace
# Host ids of template blocks: below the per-sandbox range of ``namespace._UID_RANGE``.
_BLOCK_RANGE = (1 << 29, 1 << 30)
_blocks: set[int] = set()
# Capabilities a template keeps inside its user namespace: setgid, setuid, setpcap,
# sys_admin (plus net_admin with isolated networking, to bring up a copy's loopback).
_KEEP = (6, 7, 8, 21)
_NET_ADMIN = 12


def _allocate_block() -> int:
    count = (_BLOCK_RANGE[1] - _BLOCK_RANGE[0]) // BLOCK
    while True:
        base = _BLOCK_RANGE[0] + secrets.randbelow(count) * BLOCK
        if base not in _blocks:
            _blocks.add(base)
            return base


def spawn_namespace_template(
    backend: NamespaceSandboxBackend,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    limits: Limits,
    on_output: OutputCallback,
    label: str = "",
    runtime_dir: Path | None = None,
    opt_dir: Path | None = None,
) -> NamespaceTemplate:
    """Start ``argv`` as a SnapStart template in a namespace sandbox (see the module doc)."""
    backend.prepare()
    loop = asyncio.get_running_loop()
    plan = backend._plan(argv, env, cwd, runtime_dir, limits, opt_dir)
    backend._release_uid(plan["uid"])
    base = _allocate_block()
    isolated = bool(plan["isolated"])
    plan.update(uid=base, gid=base, seccomp=seccomp.build_template())
    keep = list(_KEEP) + ([_NET_ADMIN] if isolated else [])
    plan["template"] = {"base": base, "count": BLOCK, "keep": keep, "fd_env": CONTROL_FD}
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        spawned, group = backend._launch(plan, limits, f"{label}-template")
        try:
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _pack(theirs.fileno()))]
            spawned.ctl.sendmsg([b"template"], rights)
        except BaseException:
            spawned.close()
            if group is not None:
                group.remove()
            raise
    except BaseException:
        ours.close()
        _blocks.discard(base)
        raise
    finally:
        theirs.close()
    pump = LinePump(spawned.output_fd, on_output, loop)
    template = NamespaceTemplate(backend, spawned, pump, group, limits, base, ours)
    template.polled_enforcement = False  # its copies are limited as the sandboxes they are
    backend._track(template)
    return template


class NamespaceTemplate(NamespaceSandbox):
    """The template's sandbox (its init, as any namespace sandbox) and its copies' factory."""

    def __init__(
        self,
        backend: NamespaceSandboxBackend,
        spawned: Spawned,
        pump: LinePump,
        group: cgroups.Cgroup | None,
        limits: Limits,
        base: int,
        snap_ctl: socket.socket,
    ) -> None:
        super().__init__(backend, spawned, pump, group, limits, base)
        self.base = base
        self._snap: socket.socket | None = snap_ctl
        self._inner: set[int] = set()  # inner uids of live copies
        self._standby: tuple[socket.socket, cgroups.Cgroup | None, int, Limits] | None = None
        self._refill: asyncio.TimerHandle | None = None
        self.serving: asyncio.Future[None] = self._loop.create_future()
        snap_ctl.setblocking(False)
        self._loop.add_reader(snap_ctl.fileno(), self._read_snap)

    # -- the template's SnapStart socket --------------------------------------------------
    def _read_snap(self) -> None:
        snap = self._snap
        if snap is None:
            return
        messages, closed = receive(snap)
        for message, fds in messages:
            for fd in fds:
                os.close(fd)
            if message == b"serving" and not self.serving.done():
                self.serving.set_result(None)
            elif message.startswith(b"error "):
                log.warning("SnapStart template: %s", message[6:].decode(errors="replace"))
        if closed:
            self._close_snap()

    def _close_snap(self) -> None:
        snap, self._snap = self._snap, None
        close_watched(self._loop, snap)

    @property
    def gone(self) -> bool:
        """Whether the template has exited, even if the loop has not heard of it yet."""
        self._read_snap()
        if self._snap is None or self._exited.done() or self._init_pidfd is None:
            return True
        return has_exited(self._init_pidfd)

    # -- copies ---------------------------------------------------------------------------
    def fork(
        self, env: Mapping[str, str], on_output: OutputCallback, limits: Limits, label: str = ""
    ) -> RestoredNamespaceSandbox:
        """A new copy with ``env`` in a sandbox of its own. Never waits: the copy builds
        itself and says ``hello`` (with its pidfd) on its control socket. Raises OSError."""
        standby = self._take_standby(limits)
        if standby is not None:
            ctl, group, inner = standby
        else:
            group = self._ns_backend._new_cgroup(label, limits)
            inner = self._new_inner()
            try:
                ctl = self._request(group, limits, inner)
            except BaseException:
                self._inner.discard(inner)
                if group is not None:
                    group.remove()
                raise
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            go = marshal.dumps({"env": dict(env)})
            ctl.sendmsg([go], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _pack(write_fd))])
        except BaseException:
            os.close(read_fd)
            ctl.close()
            self._inner.discard(inner)
            if group is not None:
                self._loop.create_task(group.dispose())
            raise
        finally:
            os.close(write_fd)
        self._schedule_refill(limits)
        pump = LinePump(read_fd, on_output, self._loop)
        ctl.setblocking(False)
        spawned = Spawned(0, -1, ctl, read_fd)
        copy = RestoredNamespaceSandbox(self, spawned, pump, group, limits, inner)
        copy.polled_enforcement = group is None and self._ns_backend.mode != "off"
        self._ns_backend._track(copy)
        return copy

    def _new_inner(self) -> int:
        while True:
            inner = 1 + secrets.randbelow(BLOCK - 2)  # 0 is the template; 65535 unused
            if inner not in self._inner and inner != 65534:  # nor the overflow id
                self._inner.add(inner)
                return inner

    def release(self, inner: int) -> None:
        self._inner.discard(inner)

    def _request(self, group: cgroups.Cgroup | None, limits: Limits, inner: int) -> socket.socket:
        """Ask the template for a copy; its prelude waits on the copy's socket."""
        snap = self._snap
        if snap is None or self._exited.done():
            raise OSError(errno.ESRCH, "the SnapStart template is gone")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        procs: list[int] = []
        try:
            try:
                ours.setsockopt(socket.SOL_SOCKET, SO_PASSPIDFD, 1)
            except OSError:  # older kernels: the pid, then a pidfd for it
                ours.setsockopt(socket.SOL_SOCKET, SO_PASSCRED, 1)
            opts = self._ns_backend.ns_options
            for path in group.procs_files() if group is not None else []:
                procs.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
            prelude = {
                "uid": inner,
                "gid": inner,
                "tmp_mb": limits.ephemeral_mb,
                "rlimits": _copy_rlimits(limits),
                "seccomp": self._ns_backend._seccomp,
                "isolated": opts.network == "isolated",
                "api_port": opts.api_port,
                "identity": [
                    (op[1], op[2])
                    for op in mounts.identity_files(inner, inner, opts.hostname)
                    if op[1] in ("/etc/passwd", "/etc/group")
                ],
            }
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _pack(*procs))] if procs else []
            ours.sendmsg([marshal.dumps(prelude)], rights)
            request = b'{"kind": "copy"}'
            snap.sendmsg(
                [request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _pack(theirs.fileno()))]
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
            for fd in procs:
                os.close(fd)
        return ours

    def _take_standby(
        self, limits: Limits
    ) -> tuple[socket.socket, cgroups.Cgroup | None, int] | None:
        standby, self._standby = self._standby, None
        if standby is None:
            return None
        ctl, group, inner, wanted = standby
        poller = select.poll()
        poller.register(ctl.fileno(), select.POLLHUP)
        if wanted != limits or poller.poll(0):  # other limits, or it died waiting
            self._discard(ctl, group, inner)
            return None
        return ctl, group, inner

    def keep_standby(self, limits: Limits) -> None:
        """Have a copy for ``limits`` ready ahead of the first restore."""
        self._schedule_refill(limits)

    def _schedule_refill(self, limits: Limits) -> None:
        if self._refill is None and self._standby is None:
            self._refill = self._loop.call_later(0.01, self._fill, limits)

    def _fill(self, limits: Limits) -> None:
        self._refill = None
        if self._standby is not None or self._snap is None or self._exited.done():
            return
        group = self._ns_backend._new_cgroup("snap-standby", limits)
        inner = self._new_inner()
        try:
            ctl = self._request(group, limits, inner)
        except OSError:
            self._inner.discard(inner)
            if group is not None:
                group.remove()
            return
        self._standby = (ctl, group, inner, limits)

    def _discard(self, ctl: socket.socket, group: cgroups.Cgroup | None, inner: int) -> None:
        ctl.close()  # its init exits when it sees the socket close, and the copy with it
        self._inner.discard(inner)
        if group is not None:
            self._loop.create_task(group.dispose())

    async def _destroy(self) -> None:
        if self._refill is not None:
            self._refill.cancel()
            self._refill = None
        standby, self._standby = self._standby, None
        if standby is not None:
            self._discard(*standby[:3])
        try:
            await super()._destroy()
        finally:
            self._close_snap()
            _blocks.discard(self.base)


def _copy_rlimits(limits: Limits) -> list[tuple[int, int, int]]:
    from lambdalite.sandbox.namespace import _rlimits  # the same as every namespace sandbox

    return _rlimits(limits)


def _pack(*fds: int) -> bytes:
    return b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)
