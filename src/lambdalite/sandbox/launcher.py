"""The sandbox launcher: a fork server ("zygote") that forks every sandbox's first process.

The server starts it as ``<python> -I [-S] launcher.py zygote <socket fd> [--preload=FILE
--preload-arg=TEXT] --owner=... --state=...`` and keeps a ``SOCK_SEQPACKET`` socket to it
(``forkserver.ForkServer`` is that side). A request is one short message naming the kind of
child, with two descriptors attached: the child's own control socket and the write end of
its output pipe. The server has already queued the child's plan (``marshal``) on that control
socket, so the plan is read by the child after the fork and never enters this process: a
fork server that held earlier requests in its heap would hand them to every later child.
Two messages, in fact: a prelude and the plan. The prelude says what the child does at once:
``cgroups``, ``cgroup.procs`` files it joins, and for ``namespace`` optionally ``early``, the
function-independent part of the sandbox (``inside.prepare``). The server may send the plan
much later: a child forked ahead of need, already in its cgroups (joining one can wait for an
RCU grace period, milliseconds) and namespaces, waits for it.

Kinds:

* ``namespace``: the child becomes process 1 of a new PID namespace (``unshare(CLONE_NEWPID)``
  before the fork, ``setns`` back after it) and builds the sandbox from there (``inside.py``);
  it reports the program's exit status on its control socket itself.
* ``process``: the child starts a session of its own, joins its cgroups, lowers its rlimits
  and becomes the program (no namespaces: the process backend). This process reaps it and
  reports its exit status on the control socket, then closes it.

The answer is the child's pid and a pidfd for it, through which the server watches and kills
it without any pid reuse race. Before any answer, once started (and preloaded), the launcher
says ``ready``.

**Preloading.** With ``--preload`` the fork server loads that file (standard library only, by
path, under a private module name), calls its ``preload(preload_arg)``, freezes the garbage
collector's view of everything loaded so far, and only then serves. A plan with
``in_process`` set then has the child call the module's ``run(argv, env)`` where it would
otherwise ``exec`` ``argv``: the program starts already initialized (a Python runtime client
forked instead of a new interpreter, see ``lambdalite/runtimes/python/zygote.py``).

The launcher reaps what it forked; it exits when the server's end of its socket closes (and
every namespace init exits when its own control socket closes), so a server that dies,
however it dies, leaves nothing running. Standard library only, and it runs under every
Python the platform runs functions with (3.9 and later), like ``inside.py`` next to it.
"""

from __future__ import annotations

import _socket
import contextlib
import ctypes
import gc
import marshal
import os
import resource
import signal
import struct
import sys
from importlib.machinery import SourceFileLoader
from typing import TYPE_CHECKING, Any

_HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name: str, path: str) -> Any:
    """Load a module by path under a private name (the package is not importable under -I,
    and a plain name like ``inside`` could shadow a function's own module in a child)."""
    module = type(sys)(name)
    module.__file__ = path
    sys.modules[name] = module
    loader = SourceFileLoader(name, path)
    module.__loader__ = loader
    loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from lambdalite.sandbox import inside
else:  # ``inside`` finds its sibling among the loaded modules
    _load("_lambdalite_sandbox_rootsteps", os.path.join(_HERE, "rootsteps.py"))
    inside = _load("_lambdalite_sandbox_inside", os.path.join(_HERE, "inside.py"))

_CLONE_NEWPID = 0x20000000
_PR_SET_NAME = 15
_MAX_REQUEST = 256
_MAX_PLAN = 1 << 22
_MAX_TREES = 64  # host directories a plan may attach (code, layers, extensions)
_SETUP_FAILED = 125
_EXEC_FAILED = 127

# Control sockets of ``process`` children, by pid, until their exit is reported; and exit
# statuses of children reaped before their socket was filed.
_reporters: dict[int, int] = {}
_unreported: dict[int, int] = {}


def _report(pid: int, status: int) -> None:
    fd = _reporters.pop(pid, None)
    if fd is None:
        _unreported[pid] = status
        return
    with contextlib.suppress(OSError):
        os.write(fd, b"exit %d" % os.waitstatus_to_exitcode(status))
    os.close(fd)


def _reap(signum: int = 0, frame: Any = None) -> None:
    """Collect every child that has exited; report those of the ``process`` kind."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _report(pid, status)


def read_plan(ctl_fd: int) -> dict[str, Any]:
    """In a child: the plan the server queued on its control socket."""
    data = os.read(ctl_fd, _MAX_PLAN)
    if not data:
        raise OSError(0, "no plan on the control socket")
    plan: dict[str, Any] = marshal.loads(data)
    return plan


def read_plan_and_trees(ctl: Any) -> tuple[dict[str, Any], list[int]]:
    """In a sandbox's init: the plan, with the mount trees sent in the same message."""
    size = _socket.CMSG_SPACE(4 * _MAX_TREES)
    data, ancillary, _flags, _addr = ctl.recvmsg(_MAX_PLAN, size, _socket.MSG_CMSG_CLOEXEC)
    if not data:
        raise OSError(0, "no plan on the control socket")
    plan: dict[str, Any] = marshal.loads(data)
    return plan, _descriptors(ancillary)


def _descriptors(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors of the ``SCM_RIGHTS`` parts of a received message."""
    return [
        int.from_bytes(payload[i : i + 4], sys.byteorder, signed=True)
        for level, kind, payload in ancillary
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS
        for i in range(0, len(payload) - len(payload) % 4, 4)
    ]


def join_cgroups(paths: list[str]) -> None:
    """Move this process into the cgroups whose ``cgroup.procs`` files are ``paths``."""
    for path in paths:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")  # 0: the writing process
        finally:
            os.close(fd)


def close_inherited(keep: tuple[int, ...] = ()) -> None:
    """Close every descriptor from 3 up except ``keep``: after a fork without ``exec``,
    close-on-exec protects nothing (the server's socket, other children's sockets)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _start_init(sock: Any, own_pidns: int, ctl_fd: int, out_fd: int) -> None:
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
        prelude = read_plan(ctl_fd)  # the plan itself may come much later
        join_cgroups(prelude["cgroups"])
        if prelude.get("early"):
            try:
                inside.prepare(ctl, prelude["early"])
            except OSError as exc:
                message = f"lambdalite sandbox: setup failed: {exc}"
                ctl.send(b"error " + message.encode())
                raise
        inside.run(ctl, *read_plan_and_trees(ctl))
    except BaseException as exc:
        os.write(2, f"lambdalite sandbox: cannot start: {exc}\n".encode())
    os._exit(_SETUP_FAILED)


def _start_process(ctl_fd: int, out_fd: int) -> None:
    """In the forked child: become a process sandbox's program; never returns."""
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        join_cgroups(read_plan(ctl_fd)["cgroups"])  # the prelude; the plan may come later
        plan = read_plan(ctl_fd)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 0)
        close_inherited()
        join_cgroups(plan["cgroups"])
        for res, soft, hard in plan["rlimits"]:
            resource.setrlimit(res, (soft, hard))
        os.chdir(plan["cwd"])
        argv, env = plan["argv"], plan["env"]
        name = os.path.basename(argv[0]).encode()[:15]
        inside._libc.prctl(_PR_SET_NAME, name, 0, 0, 0)
        if plan.get("in_process") and inside.RUNNER is not None:
            inside.RUNNER.run(argv, env)
        os.execvpe(argv[0], argv, env)
    except BaseException as exc:
        os.write(2, f"lambdalite sandbox: cannot start the program: {exc}\n".encode())
    os._exit(_EXEC_FAILED)


def _fork_sandbox(sock: Any, own_pidns: int, fds: list[int]) -> int:
    libc = inside._libc
    if libc.unshare(_CLONE_NEWPID) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWPID): {os.strerror(err)}")
    try:
        pid = os.fork()
        if pid == 0:
            _start_init(sock, own_pidns, fds[0], fds[1])
    finally:
        if libc.setns(own_pidns, _CLONE_NEWPID) != 0:
            os._exit(_SETUP_FAILED)  # children would land in a stale namespace: give up
    return pid


def _fork_process(fds: list[int]) -> int:
    pid = os.fork()
    if pid == 0:
        _start_process(fds[0], fds[1])
    # The control socket stays here until the child's exit is reported on it.
    _reporters[pid] = fds.pop(0)
    early = _unreported.pop(pid, None)
    if early is not None:
        _report(pid, early)
    return pid


def _serve(sock: Any) -> None:
    own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, _reap)
    space = _socket.CMSG_SPACE(4 * 4)
    while True:
        flags = _socket.MSG_CMSG_CLOEXEC
        try:
            data, ancillary, _flags, _addr = sock.recvmsg(_MAX_REQUEST, space, flags)
        except ConnectionResetError:
            return  # the server is gone (it closed with replies unread)
        if not data and not ancillary:
            return  # the server is gone
        fds = _descriptors(ancillary)
        try:
            if len(fds) != 2:
                raise OSError(0, "a request needs a control socket and an output pipe")
            if data == b"namespace":
                pid = _fork_sandbox(sock, own_pidns, fds)
            elif data == b"process":
                pid = _fork_process(fds)
            else:
                raise OSError(0, f"unknown request {data[:40]!r}")
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


def _preload(path: str, arg: str) -> None:
    runner = _load("_lambdalite_preload", path)
    runner.preload(arg)
    inside.RUNNER = runner
    gc.collect()
    # Everything loaded so far lives as long as the fork server: children never scan it, so
    # the collector does not copy these pages into every child.
    gc.freeze()


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] != "zygote":
        sys.exit("usage: launcher.py zygote <socket fd> [--preload=FILE] [--owner=...]")
    fd = int(sys.argv[2])
    os.set_inheritable(fd, False)
    inside._libc.prctl(_PR_SET_NAME, b"sandbox-zygote", 0, 0, 0)
    options = dict(arg[2:].partition("=")[::2] for arg in sys.argv[3:] if arg.startswith("--"))
    if options.get("preload"):
        _preload(options["preload"], options.get("preload-arg", ""))
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET, 0, fd)
    sock.send(b"ready")  # the server need not wait for a start that is still going on
    _serve(sock)


if __name__ == "__main__":
    main()
