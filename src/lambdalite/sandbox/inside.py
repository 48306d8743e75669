"""What runs inside a namespace sandbox: it builds the sandbox from within, then guards it.

``launcher.py`` forks this code as process 1 of a new PID namespace, still privileged, with a
``SOCK_SEQPACKET`` control socket to the server and the plan the server computed (file system
steps from ``mounts``, identity, limits, the seccomp program). ``prepare`` (steps 1-3, the
part that does not depend on the function; a zygote's children do it before their plan
arrives) and ``run`` (the rest) then:

1. leave the host's mount, IPC and UTS (and, for isolated networking, network) namespaces;
   for isolated networking, bring up ``lo`` and bind the Runtime API socket at the
   in-sandbox address, handing the listening descriptor to the server (``SCM_RIGHTS``);
2. start the root file system on a tmpfs with the system steps (read-only binds of what
   the runtime needs; with a zygote also ``/proc`` and ``/dev``);
3. fork process 2, which joins the sandbox's cgroups at once (through descriptors opened
   while the host's ``/sys`` is in view; the move can wait for an RCU grace period, and
   overlaps the rest) and waits for its part of the plan on a pipe;
4. hand process 2 its part of the plan: it enters a cgroup namespace of its own, lowers its
   rlimits, takes the sandbox's uid and gid, drops every capability (bounding set
   included), sets ``no_new_privs`` and installs the seccomp filter, while the init adds
   the function's steps (the code at ``/var/task``, a private ``/tmp``, a fresh ``/proc``,
   a minimal ``/dev``, identity files) and pivots into the root, so nothing else of the host
   exists for the function (pivoting moves process 2 along); then, told the root is ready,
   process 2 execs the runtime;
5. stay as init, without capabilities: reaps orphans, and when the runtime exits reports
   its status on the control socket and exits, which makes the kernel kill everything left
   in the namespace. It also exits as soon as the server's end of the control socket closes,
   so a crashed server never leaves functions running.

For a SnapStart template (``plan["template"]``, see ``namespace_template.py``) process 2
instead enters a user namespace of its own once the root is ready, the init maps its ids onto
the template's block of host ids, and process 2 execs the runtime as that namespace's root,
with the few capabilities building a restored copy needs and the template's seccomp filter;
its SnapStart control socket arrives on the control socket right after the plan.

With a preloaded fork server, process 2 does not ``exec``: after the same steps it closes
every inherited descriptor, writes the program's argv over the fork server's in
``/proc/self/cmdline`` and calls ``RUNNER.run(argv, env)``.

Standard library only and no imports from lambdalite: the launcher loads it by path, under
every Python the platform runs functions with (3.9 and later).
"""

from __future__ import annotations

import _socket
import contextlib
import ctypes
import fcntl
import marshal
import os
import resource
import select
import signal
import struct
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING or __name__.startswith("lambdalite."):
    from lambdalite.sandbox import rootsteps
else:  # loaded by path by the launcher, which loaded its sibling first
    rootsteps = sys.modules["_lambdalite_sandbox_rootsteps"]

_CLONE = {
    "mount": 0x00020000,
    "cgroup": 0x02000000,
    "uts": 0x04000000,
    "ipc": 0x08000000,
    "net": 0x40000000,
}
_PR_SET_NO_NEW_PRIVS, _PR_CAPBSET_DROP, _PR_SET_SECCOMP = 38, 24, 22
_PR_CAPBSET_READ = 23
_USERNS = 0x10000000  # CLONE_NEWUSER
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_SECCOMP_MODE_FILTER = 2
_CAP_VERSION_3 = 0x20080522
_SIOCSIFFLAGS = 0x8914
_IFF_UP, _IFF_LOOPBACK, _IFF_RUNNING = 0x1, 0x8, 0x40
_SETUP_FAILED = 125
_EXEC_FAILED = 127

_libc = rootsteps.libc
_check = rootsteps.check
# The preloaded module of a fork server (``run(argv, env)``), set by the launcher; None
# when the launcher preloads nothing, and every program is exec'd.
RUNNER: Any = None
_PR_SET_NAME = 15


def _prctl(option: int, arg: int = 0, ptr: Any = None) -> int:
    zero = ctypes.c_ulong(0)
    extra = ptr if ptr is not None else zero
    result: int = _libc.prctl(option, ctypes.c_ulong(arg), extra, zero, zero)
    return result


# -- the network ----------------------------------------------------------------------------
def _isolated_network(ctl: Any, port: int) -> None:
    """Bring up loopback and hand the server a listener at 127.0.0.1:``port``."""
    probe = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        request = struct.pack("16sH22x", b"lo", _IFF_UP | _IFF_LOOPBACK | _IFF_RUNNING)
        fcntl.ioctl(probe.fileno(), _SIOCSIFFLAGS, request)
    finally:
        probe.close()
    listener = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    try:
        listener.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", listener.fileno()))]
        ctl.sendmsg([b"listen"], rights)
    finally:
        listener.close()


# -- privileges -----------------------------------------------------------------------------
def _drop_bounding_set() -> None:
    """No process started from here can ever regain a capability (needs CAP_SETPCAP)."""
    cap = 0
    while _prctl(_PR_CAPBSET_DROP, cap) == 0:
        cap += 1
    _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)


def _clear_capabilities() -> None:
    """Empty the effective, permitted and inheritable sets of this process."""
    header = struct.pack("=Ii", _CAP_VERSION_3, 0)
    data = ctypes.create_string_buffer(24)  # two zeroed __user_cap_data_struct
    _check(_libc.capset(header, data), "capset")


def install_filter(program: bytes) -> None:
    """Install the seccomp ``program`` (packed ``struct sock_filter``s) on this process."""
    filters = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("@HP", len(program) // 8, ctypes.addressof(filters))  # sock_fprog
    _check(_prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, fprog), "seccomp")


def _wait_for_root(go: int) -> None:
    ready = os.read(go, 1)  # the root is finished, and this process was moved into it
    os.close(go)
    if not ready:
        os._exit(_SETUP_FAILED)


def _become_template(plan: dict[str, Any], template: dict[str, Any], go: int, up: int) -> None:
    """Process 2 of a SnapStart template: root of a user namespace of its own.

    Once the root is ready it enters a new user namespace and tells the init, which maps
    that namespace's ids 0..count-1 onto the host ids ``base``.. (a block no other sandbox
    uses) and then says so. The program then runs as the namespace's root: capabilities only
    inside it, limited to ``keep`` (what building a restored copy needs), under the seccomp
    filter for templates. Copies drop all of them (``runtimes/python/snapcopy.py``).
    """
    # Only once the root is finished: while the init pivots, this process could look
    # chrooted to the kernel, which refuses it a user namespace then.
    if not os.read(go, 1):
        os._exit(_SETUP_FAILED)
    _check(_libc.unshare(_USERNS), "unshare(CLONE_NEWUSER)")
    os.write(up, b"u")
    os.close(up)
    _wait_for_root(go)  # a second byte: the maps are written
    keep = 0
    for cap in template["keep"]:
        keep |= 1 << cap
    cap = 0
    while _prctl(_PR_CAPBSET_READ, cap) >= 0 and cap < 64:
        if not keep & (1 << cap):
            _check(_prctl(_PR_CAPBSET_DROP, cap), "drop a capability")
        cap += 1
    _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    os.setgroups([])
    os.setresgid(0, 0, 0)  # the namespace's root, host ids base..
    os.setresuid(0, 0, 0)
    header = struct.pack("=Ii", _CAP_VERSION_3, 0)
    low, high = keep & 0xFFFFFFFF, keep >> 32
    data = struct.pack("=6I", low, low, 0, high, high, 0)  # effective, permitted, inheritable
    _check(_libc.capset(header, data), "capset")
    _check(_prctl(_PR_SET_NO_NEW_PRIVS, 1), "no_new_privs")
    install_filter(plan["seccomp"])
    fd = template["fd"]  # the SnapStart control socket, left open across the exec
    os.set_inheritable(fd, True)
    plan["env"] = {**plan["env"], template["fd_env"]: str(fd)}


def _map_template(child: int, template: dict[str, Any], up: int) -> None:
    """In the init, once process 2 entered its user namespace: write its id maps (this needs
    privileges on the host, which process 2 no longer has there)."""
    if os.read(up, 1) != b"u":
        raise OSError(0, "the template left before entering its user namespace")
    os.close(up)
    line = b"0 %d %d\n" % (template["base"], template["count"])
    for name in ("uid_map", "gid_map"):
        fd = os.open(f"/proc/{child}/{name}", os.O_WRONLY)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def _settle(settle: dict[str, Any], keep: tuple[int, ...]) -> None:
    """In process 2 of a child forked ahead (``early["settle"]``), before its plan comes: the
    steps that are the same for every function, off the cold start's path. Only taking the
    sandbox's uid (which the plan brings) and dropping capabilities are left; the seccomp
    filter lets both through, and needs ``no_new_privs`` or privileges, which it has."""
    _close_inherited(keep)
    _libc.unshare(_CLONE["cgroup"])  # /proc/self/cgroup shows "/"; older kernels lack it
    _limit(settle["rlimits"])
    _drop_bounding_set()
    os.setgroups([])
    _check(_prctl(_PR_SET_NO_NEW_PRIVS, 1), "no_new_privs")
    install_filter(settle["seccomp"])


def _limit(rlimits: list[tuple[int, int, int]]) -> None:
    for res, soft, hard in rlimits:
        _old_soft, ceiling = resource.getrlimit(res)
        if ceiling != resource.RLIM_INFINITY:  # raising it would need CAP_SYS_RESOURCE
            soft, hard = min(soft, ceiling), min(hard, ceiling)
        resource.setrlimit(res, (soft, hard))


def _become_program(
    plan: dict[str, Any], go: int, up: int = -1, settled: dict[str, Any] | None = None
) -> None:
    """In process 2, in its cgroups: take the limits and identity of the function (while the
    init finishes the root), wait for the root on ``go``, then exec the runtime (or, forked
    from a preloaded fork server, become it in place). ``settled``: what ``_settle`` was
    given, the steps common to every function it already took."""
    in_process = bool(plan.get("in_process")) and RUNNER is not None
    if in_process:
        if settled is None:
            _close_inherited((go,))
        _show(plan["argv"])
    if settled is None:
        _libc.unshare(_CLONE["cgroup"])
        _limit(plan["rlimits"])
    elif plan["rlimits"] != settled["rlimits"]:
        _limit(plan["rlimits"])
    template = plan.get("template")
    if template:
        _become_template(plan, template, go, up)
    else:
        if settled is None:
            _drop_bounding_set()
            os.setgroups([])
        gid, uid = plan["gid"], plan["uid"]
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        _clear_capabilities()
        if settled is None or plan["seccomp"] != settled["seccomp"]:
            _check(_prctl(_PR_SET_NO_NEW_PRIVS, 1), "no_new_privs")
            install_filter(plan["seccomp"])
        _wait_for_root(go)
    null = os.open("/dev/null", os.O_RDWR)  # the sandbox's own, not a host file
    os.dup2(null, 0)
    os.close(null)
    os.chdir(plan["cwd"])
    os.umask(0o022)
    argv, env = plan["argv"], plan["env"]
    if in_process:
        _libc.prctl(_PR_SET_NAME, os.path.basename(argv[0]).encode()[:15], 0, 0, 0)
        RUNNER.run(argv, env)
    os.execvpe(argv[0], argv, env)


def _show(argv: list[str]) -> None:
    """Write ``argv`` over the fork server's command line, so ``/proc/self/cmdline`` shows
    what an exec would have (not the server's host paths). The area cannot grow: a longer
    command line is cut. Best effort."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            stat = fh.read()
        fields = stat[stat.rindex(b")") + 2 :].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (fields 48, 49)
    except (OSError, ValueError, IndexError):
        return
    size = end - start
    if size <= 0:
        return
    data = b"".join(arg.encode() + b"\0" for arg in argv)[: size - 1]
    ctypes.memmove(start, data + b"\0" * (size - len(data)), size)


def _close_inherited(keep: tuple[int, ...] = ()) -> None:
    """Close every descriptor from 3 up but ``keep``: without an exec, close-on-exec protects
    nothing (the init's control socket, the fork server's own socket)."""
    for name in os.listdir("/proc/self/fd"):
        if int(name) > 2 and int(name) not in keep:
            with contextlib.suppress(OSError):
                os.close(int(name))


def _receive_descriptor(ctl: Any) -> int:
    """The one descriptor the server sends on ``ctl`` after the plan (blocking)."""
    _data, ancillary, _flags, _addr = ctl.recvmsg(64, _socket.CMSG_SPACE(4))
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS and len(payload) >= 4:
            fd: int = struct.unpack("i", payload[:4])[0]
            return fd
    raise OSError(0, "no SnapStart control socket after the plan")


# -- init -----------------------------------------------------------------------------------
def _supervise(ctl: Any, child: int) -> None:
    """Reap every process that ends up here; report the runtime's exit, then leave."""
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    while True:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid, status = child, 0xFF00  # nothing left to wait for
            if pid == 0:
                break
            if pid == child:
                ctl.send(b"exit %d" % os.waitstatus_to_exitcode(status))
                os._exit(0)
        ready, _, _ = select.select([ctl.fileno(), wake_r], [], [])
        if ctl.fileno() in ready and not ctl.recv(64):
            os._exit(0)  # the server is gone: take the sandbox with us
        if wake_r in ready:
            while True:
                try:
                    if not os.read(wake_r, 256):
                        break
                except BlockingIOError:
                    break


_prepared: dict[str, int] = {}  # process 2 and the pipe its plan goes through, once forked


def prepare(ctl: Any, early: dict[str, Any]) -> None:
    """The part of a sandbox that does not depend on the function, possibly ahead of need.

    Leaves the host's namespaces, starts the root with the system steps (``early["ops"]``)
    and forks process 2, which joins the sandbox's cgroups (``early["cgroups"]``; this can
    wait for an RCU grace period, so it overlaps the rest of the setup) and then waits for
    its part of the plan. Raises OSError on failure.
    """
    flags = _CLONE["mount"] | _CLONE["uts"] | _CLONE["ipc"]
    if early["isolated"]:
        flags |= _CLONE["net"]
    _check(_libc.unshare(flags), "unshare")
    if early["isolated"]:
        _isolated_network(ctl, early["api_port"])
    hostname = early["hostname"].encode()
    _check(_libc.sethostname(hostname, len(hostname)), "sethostname")
    root = early["root"]
    rootsteps.start(root)
    for op in early["ops"]:
        rootsteps.apply(root, op)
    # SIGCHLD must have a handler before the first child exists, or its exit could be missed.
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    # Opened here and now, while the host's /sys is still in view for both processes.
    cgroup_fds = [os.open(path, os.O_WRONLY | os.O_CLOEXEC) for path in early["cgroups"]]
    plan_r, plan_w = os.pipe2(os.O_CLOEXEC)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    up_r, up_w = os.pipe2(os.O_CLOEXEC) if early.get("template") else (-1, -1)
    child = os.fork()
    if child == 0:
        argv0 = "the program"
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.close(plan_w)
            os.close(go_w)
            if up_r >= 0:
                os.close(up_r)
            for fd in cgroup_fds:
                os.write(fd, b"0")
                os.close(fd)
            settled = early.get("settle")
            if settled is not None:
                _settle(settled, (plan_r, go_r))
            chunks = []
            while True:
                chunk = os.read(plan_r, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
            if not chunks:
                os._exit(_SETUP_FAILED)  # the sandbox was given up before it got a plan
            os.close(plan_r)
            plan = marshal.loads(b"".join(chunks))
            argv0 = plan["argv"][0]
            _become_program(plan, go_r, up_w, settled)
        except BaseException as exc:  # report anything, then exit
            os.write(2, f"lambdalite sandbox: cannot start {argv0}: {exc}\n".encode())
        os._exit(_EXEC_FAILED)
    os.close(plan_r)
    os.close(go_r)
    if up_w >= 0:
        os.close(up_w)
    for fd in cgroup_fds:
        os.close(fd)
    _prepared.update(child=child, plan_w=plan_w, go_w=go_w, up_r=up_r)
    if early.get("pivot"):  # the plan's host directories then come as mount trees
        rootsteps.enter(root)
        _prepared["pivoted"] = 1


def run(ctl: Any, plan: dict[str, Any], trees: list[int] | None = None) -> None:
    """Build the sandbox of ``plan``, start its program and supervise it; never returns.

    Without a ``prepare`` before, it prepares from ``plan`` first (all of ``plan["ops"]``
    then runs on the new root). ``trees`` are the mount trees its ``attach`` steps name,
    received with the plan."""
    try:
        template = plan.get("template")
        if template:
            # A SnapStart template's control socket follows the plan; process 2 inherits it.
            template["fd"] = _receive_descriptor(ctl)
        if not _prepared:
            keys = ("root", "hostname", "isolated", "api_port", "cgroups", "template")
            prepare(ctl, {**{key: plan.get(key) for key in keys}, "ops": []})
        if template:
            os.close(template["fd"])
        # Process 2 takes its identity and limits while the root is finished here.
        wanted = ("rlimits", "uid", "gid", "seccomp", "argv", "env", "cwd", "in_process")
        data = marshal.dumps({key: plan.get(key) for key in (*wanted, "template")})
        with contextlib.suppress(OSError):  # process 2 gone: its exit is reported later
            while data:
                data = data[os.write(_prepared["plan_w"], data) :]
        os.close(_prepared["plan_w"])
        if _prepared.get("pivoted"):
            if len(trees or ()) != plan.get("trees", 0):
                raise OSError(0, f"the plan names {plan.get('trees', 0)} mount trees")
            for op in plan["ops"]:
                rootsteps.apply("", op, trees)
            rootsteps.seal()
        else:
            root = plan["root"]
            for op in plan["ops"]:
                rootsteps.apply(root, op)
            rootsteps.enter(root)
            rootsteps.seal()
        if template:
            os.write(_prepared["go_w"], b"g")  # the root is ready: it may unshare now
            _map_template(_prepared["child"], template, _prepared["up_r"])
    except OSError as exc:
        message = f"lambdalite sandbox: setup failed: {exc}"
        os.write(2, message.encode() + b"\n")
        ctl.send(b"error " + message.encode())
        os._exit(_SETUP_FAILED)
    child = _prepared["child"]
    with contextlib.suppress(OSError):
        os.write(_prepared["go_w"], b"g")
    os.close(_prepared["go_w"])
    _drop_bounding_set()
    _clear_capabilities()
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    _supervise(ctl, child)
