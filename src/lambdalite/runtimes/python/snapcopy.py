"""A restored copy of a SnapStart template in a namespace sandbox, built from inside.

The template runs as root of a user namespace of its own (host ids: a block no other sandbox
uses), with only the capabilities this module needs and a seccomp filter that lets ``unshare``
and ``mount`` through. For each copy the platform sends the template a ``copy`` request with
one end of a ``SOCK_SEQPACKET`` socket; on that socket it has already queued the copy's
*prelude* (``marshal``: inner uid/gid, ``/tmp`` size, rlimits, the strict seccomp program,
network mode, and the ``cgroup.procs`` files of the copy's cgroups as descriptors the platform
opened), and it later sends *go* (the environment's variables, with its output pipe).

``become_copy`` runs in the template's fresh fork and

1. unshares mount, PID, IPC and UTS namespaces (and the network, for isolated networking),
   all owned by the template's user namespace, and forks: the child is process 1 of the new
   PID namespace, the copy's init; the fork's parent leaves at once;
2. in the init: says ``hello`` (the platform receives a pidfd for it with the message, and so
   learns its host pid), joins the copy's cgroups, mounts a fresh ``/tmp`` and ``/proc``
   (``hidepid=2``) and an ``/etc/passwd`` and ``/etc/group`` naming its uid, brings up
   loopback and hands over a Runtime API listener when isolated, enters a cgroup namespace,
   lowers its rlimits, takes its own uid and gid, drops every capability (bounding set
   included), sets ``no_new_privs`` and installs the strict filter;
3. forks the runtime process at once (a standby copy is then ready up to its environment),
   which waits for *go*, takes the output pipe as stdout/stderr and returns from here with
   the new variables in ``os.environ``; the init stays behind, reports the runtime's exit
   status (``exit <n>``) and exits, which ends the copy. It also exits when the platform
   closes its end, so a copy never outlives its sandbox.

Standard library only; it runs under the function's interpreter, loaded by ``snapstart.py``.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import marshal
import os
import random
import resource
import select
import signal
import socket
import struct
import sys
from typing import Any

_NEWNS, _NEWCGROUP, _NEWUTS, _NEWIPC = 0x00020000, 0x02000000, 0x04000000, 0x08000000
_NEWPID, _NEWNET = 0x20000000, 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_BIND = 2, 4, 8, 4096
_PR_SET_DUMPABLE, _PR_CAPBSET_DROP, _PR_SET_SECCOMP, _PR_SET_NO_NEW_PRIVS = 4, 24, 22, 38
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_SECCOMP_MODE_FILTER = 2
_CAP_VERSION_3 = 0x20080522
_SIOCSIFFLAGS = 0x8914
_IFF_UP, _IFF_LOOPBACK, _IFF_RUNNING = 0x1, 0x8, 0x40
_SETUP_FAILED = 125
_MAX_MESSAGE = 1 << 20

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _prctl(option: int, arg: int = 0, ptr: Any = None) -> int:
    zero = ctypes.c_ulong(0)
    extra = ptr if ptr is not None else zero
    result: int = _libc.prctl(option, ctypes.c_ulong(arg), extra, zero, zero)
    return result


def _mount(fstype: str, target: str, flags: int, data: str) -> None:
    _check(
        _libc.mount(
            fstype.encode(), target.encode(), fstype.encode(), ctypes.c_ulong(flags), data.encode()
        ),
        f"mount {fstype} on {target}",
    )


def _receive(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    data, ancillary, _flags, _addr = sock.recvmsg(_MAX_MESSAGE, socket.CMSG_SPACE(16 * 4))
    fds = [
        int.from_bytes(payload[i : i + 4], sys.byteorder, signed=True)
        for level, kind, payload in ancillary
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
        for i in range(0, len(payload) - len(payload) % 4, 4)
    ]
    if not data:
        return None, fds
    message: dict[str, Any] = marshal.loads(data)
    return message, fds


def become_copy(sock_fd: int) -> None:
    """In a fresh fork of the template; returns only in the copy's runtime process."""
    sock = socket.socket(fileno=sock_fd)
    try:
        prelude, fds = _receive(sock)
        if prelude is None:
            os._exit(0)  # given up before it started
        flags = _NEWNS | _NEWPID | _NEWIPC | _NEWUTS | (_NEWNET if prelude["isolated"] else 0)
        _check(_libc.unshare(flags), "unshare")
        if os.fork() != 0:
            os._exit(0)  # the init below is the copy; the template's init reaps it
        sock.send(b"hello")
        _build(sock, prelude, fds)
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(wake_w)
        child = os.fork()  # the runtime, forked ahead of its environment (off a restore's path)
        if child != 0:
            _supervise(sock, child, wake_r)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(wake_r)
        os.close(wake_w)
        go, fds = _receive(sock)  # the init leaves the socket's messages to this process
        if go is None:
            os._exit(0)
        output = fds[0]
        os.dup2(output, 1)
        os.dup2(output, 2)
        for fd in fds:
            os.close(fd)
    except BaseException as exc:
        message = f"lambdalite snapstart: cannot restore: {exc}"
        with contextlib.suppress(OSError):
            sock.send(b"error " + message.encode())
        with contextlib.suppress(OSError):
            os.write(2, message.encode() + b"\n")
        os._exit(_SETUP_FAILED)
    # The runtime process of the copy.
    sock.close()
    os.environ.update(go.get("env") or {})
    random.seed()


def _build(sock: socket.socket, prelude: dict[str, Any], cgroup_fds: list[int]) -> None:
    """The copy's sandbox, from its init (see the module docstring, step 2)."""
    for fd in cgroup_fds:
        os.write(fd, b"0")  # opened by the platform: its write permission, this process
        os.close(fd)
    _mount("tmpfs", "/tmp", _MS_NOSUID | _MS_NODEV, f"mode=1777,size={prelude['tmp_mb']}m")
    _mount("proc", "/proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, "hidepid=2")
    for target, content in prelude["identity"]:  # /etc/passwd and /etc/group name its uid
        _show_file(target, content)
    if prelude["isolated"]:
        _listen(sock, prelude["api_port"])
    _libc.unshare(_NEWCGROUP)  # /proc/self/cgroup shows "/"
    for res, soft, hard in prelude["rlimits"]:
        _old, ceiling = resource.getrlimit(res)
        if ceiling != resource.RLIM_INFINITY:
            soft, hard = min(soft, ceiling), min(hard, ceiling)
        resource.setrlimit(res, (soft, hard))
    cap = 0
    while _prctl(_PR_CAPBSET_DROP, cap) == 0:
        cap += 1
    _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    uid, gid = prelude["uid"], prelude["gid"]
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)  # leaving the namespace's root clears every capability
    header = struct.pack("=Ii", _CAP_VERSION_3, 0)
    _check(_libc.capset(header, ctypes.create_string_buffer(24)), "capset")
    # As after an exec: the copy may read its own /proc files (the uid change cleared it).
    _prctl(_PR_SET_DUMPABLE, 1)
    _check(_prctl(_PR_SET_NO_NEW_PRIVS, 1), "no_new_privs")
    program = prelude["seccomp"]
    filters = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("@HP", len(program) // 8, ctypes.addressof(filters))
    _check(_prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, fprog), "seccomp")


def _show_file(target: str, content: bytes) -> None:
    """Put a file with ``content`` over ``target`` (a bind of a file made in the copy's new
    ``/tmp`` and unlinked at once: it takes a few bytes of it, and is owned by the namespace's
    root, so the function can read it and not change it)."""
    source = f"/tmp/.{os.path.basename(target)}"
    fd = os.open(source, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, content)
    finally:
        os.close(fd)
    try:
        flags = ctypes.c_ulong(_MS_BIND)
        _check(_libc.mount(source.encode(), target.encode(), None, flags, None), f"show {target}")
    finally:
        os.unlink(source)


def _listen(sock: socket.socket, port: int) -> None:
    """Bring up loopback in the copy's own network and hand over its Runtime API listener."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sH22x", b"lo", _IFF_UP | _IFF_LOOPBACK | _IFF_RUNNING)
        fcntl.ioctl(probe.fileno(), _SIOCSIFFLAGS, request)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        packed = listener.fileno().to_bytes(4, sys.byteorder, signed=True)
        sock.sendmsg([b"listen"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, packed)])


def _supervise(sock: socket.socket, child: int, wake: int) -> None:
    """The copy's init: reap, report the runtime's exit, leave with it or with the platform."""
    poller = select.poll()
    poller.register(sock.fileno(), 0)  # POLLHUP and POLLERR are always reported
    poller.register(wake, select.POLLIN)
    while True:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid, status = child, 0xFF00
            if pid == 0:
                break
            if pid == child:
                with contextlib.suppress(OSError):
                    sock.send(b"exit %d" % os.waitstatus_to_exitcode(status))
                os._exit(0)
        # Only the hang-up of the platform's end is watched here: the messages (the
        # environment) are the runtime's to read.
        for fd, _events in poller.poll():
            if fd == sock.fileno():
                os._exit(0)
        with contextlib.suppress(OSError):
            while os.read(wake, 256):
                pass
