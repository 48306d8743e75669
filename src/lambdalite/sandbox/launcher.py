"""The sandbox launcher: a small privileged process that forks every namespace sandbox.

The server starts it once, as ``<python> -I -S launcher.py zygote <socket fd> --owner=...
--state=...``, and keeps a ``SOCK_SEQPACKET`` socket to it. For each sandbox the server sends
one request: the plan (``marshal``), with two descriptors attached, the sandbox's own control
socket and the write end of its output pipe. The launcher then forks the sandbox's init as
process 1 of a new PID namespace (``unshare(CLONE_NEWPID)`` before the fork, ``setns`` back
after it) and answers with the init's pid and a pidfd for it, through which the server
watches and kills it without any pid reuse race.

Forking from a process that has already started and imported everything is the point: an
interpreter start per sandbox would cost more than all the namespace and mount work together.
The launcher reaps the inits it forked; it exits when the server's end of its socket closes
(and every init exits when its own control socket closes), so a server that dies, however it
dies, leaves nothing running. Standard library only, like ``inside.py`` next to it.
"""

import _socket
import ctypes
import marshal
import os
import signal
import struct
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lambdalite.sandbox import inside
else:  # run by path under -I: the package is not importable (and would cost more)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import inside

_CLONE_NEWPID = 0x20000000
_PR_SET_NAME = 15
_MAX_REQUEST = 1 << 20
_SETUP_FAILED = 125


def _reap(signum: int = 0, frame: Any = None) -> None:
    """Collect every init that has exited (the server watches them through pidfds)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _start_init(sock: Any, own_pidns: int, ctl_fd: int, out_fd: int, plan_bytes: bytes) -> None:
    """In the forked child: become the sandbox's init; never returns."""
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        sock.close()
        os.close(own_pidns)
        os.setsid()
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        inside._libc.prctl(_PR_SET_NAME, b"sandbox-init", 0, 0, 0)
        ctl = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET, 0, ctl_fd)
        inside.run(ctl, marshal.loads(plan_bytes))
    except BaseException as exc:
        os.write(2, f"lambdalite sandbox: cannot start: {exc}\n".encode())
    os._exit(_SETUP_FAILED)


def _fork_sandbox(sock: Any, own_pidns: int, fds: list[int], plan_bytes: bytes) -> int:
    libc = inside._libc
    if libc.unshare(_CLONE_NEWPID) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWPID): {os.strerror(err)}")
    try:
        pid = os.fork()
        if pid == 0:
            _start_init(sock, own_pidns, fds[0], fds[1], plan_bytes)
    finally:
        if libc.setns(own_pidns, _CLONE_NEWPID) != 0:
            os._exit(_SETUP_FAILED)  # children would land in a stale namespace: give up
    return pid


def _serve(sock: Any) -> None:
    own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, _reap)
    space = _socket.CMSG_SPACE(4 * 4)
    while True:
        flags = _socket.MSG_CMSG_CLOEXEC
        data, ancillary, _flags, _addr = sock.recvmsg(_MAX_REQUEST, space, flags)
        if not data and not ancillary:
            return  # the server is gone
        fds = [
            int.from_bytes(payload[i : i + 4], sys.byteorder, signed=True)
            for level, kind, payload in ancillary
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS
            for i in range(0, len(payload) - len(payload) % 4, 4)
        ]
        try:
            if len(fds) != 2:
                raise OSError(0, "a request needs a control socket and an output pipe")
            pid = _fork_sandbox(sock, own_pidns, fds, data)
            pidfd = os.pidfd_open(pid)
            try:
                rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", pidfd))]
                sock.sendmsg([b"pid %d" % pid], rights)
            finally:
                os.close(pidfd)
        except OSError as exc:
            sock.send(b"error " + str(exc).encode())
        finally:
            for fd in fds:
                os.close(fd)


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] != "zygote":
        sys.exit("usage: launcher.py zygote <socket fd> [--owner=...] [--state=...]")
    fd = int(sys.argv[2])
    os.set_inheritable(fd, False)
    inside._libc.prctl(_PR_SET_NAME, b"sandbox-zygote", 0, 0, 0)
    _serve(_socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET, 0, fd))


if __name__ == "__main__":
    main()
