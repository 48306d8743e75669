"""SnapStart inside the Python runtime client: snapshot by staying alive, restore by forking.

The platform starts the runtime of a SnapStart version once, as a *template*, with
``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`` and a control socket (its descriptor number in
``_LAMBDALITE_SNAPSTART_FD``). ``bootstrap.py`` imports the handler as usual, then hands over
to ``snapshot_and_serve``, which

1. runs the before-snapshot hooks (reverse order of registration); a failure is reported by
   the caller on ``/runtime/init/error`` as ``Runtime.BeforeSnapshotError``;
2. calls ``GET /runtime/restore/next``: the platform takes that as "the snapshot may be taken
   now", answers at once and never talks to this process over the Runtime API again;
3. serves requests on the control socket (JSON; see ``_serve``): copies it forks, each
   with what it must join (cgroups, rlimits) and, when it is to run, the new environment's
   variables and output pipe (``SCM_RIGHTS``). The template first says ``serving``, answers
   each fork with ``pid <n>`` and reports ``exit <n> <status>`` when a copy ends. In a
   namespace sandbox a request is a ``copy`` instead, with the copy's own socket: the fork
   builds a sandbox of its own (``snapcopy.py``) and deals with the platform directly.

A forked copy (``_restore``) becomes an environment of its own: new session, its cgroups and
limits, its output pipe on stdout/stderr, the new variables (Runtime API address, log stream,
...), a fresh seed for ``random``, a new connection to its own Runtime API. It then runs the
after-restore hooks (registration order); a failure is posted to ``/runtime/restore/error`` as
``Runtime.AfterRestoreError`` and the copy exits. Otherwise ``snapshot_and_serve`` returns in
the copy and the runtime client goes on with ``/next`` as in any environment.

Standard library only. It runs under the function's interpreter (python3.12 or later, the
runtimes SnapStart supports), loaded by path from ``bootstrap.py`` in the template only.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any

CONTROL_FD = "_LAMBDALITE_SNAPSTART_FD"
_API = "/2018-06-01/runtime"
_MAX_REQUEST = 1 << 20
_SETUP_FAILED = 125

# (exception, error type, path to post to) -> None: logs the failure the way the runtime
# client logs errors and posts the error document; provided by bootstrap.py.
Report = Callable[[BaseException, str, str], None]


def _hooks() -> tuple[list[Any], list[Any]]:
    module = sys.modules.get("snapshot_restore_py")
    if module is None:  # the function registered nothing
        return [], []
    return list(module.get_before_snapshot()), list(module.get_after_restore())


def _run_hooks(hooks: list[Any]) -> None:
    for func, args, kwargs in hooks:
        func(*args, **kwargs)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass


class HookError(Exception):
    """A runtime hook raised; ``error_type`` is the platform's name for that failure."""

    def __init__(self, error_type: str, cause: BaseException) -> None:
        Exception.__init__(self, f"{type(cause).__name__}: {cause}")
        self.error_type = error_type
        self.cause = cause
        self.trace = traceback.format_tb(cause.__traceback__)


def snapshot_and_serve(runtime: Any, connect: Callable[[str], Any], report: Report) -> None:
    """In the template: hooks, snapshot point, then fork requests. Returns only in a restored
    copy (with ``runtime.conn`` connected to that copy's own Runtime API); raises
    ``HookError`` when a before-snapshot hook fails."""
    before, _after = _hooks()
    try:
        _run_hooks(list(reversed(before)))
    except Exception as exc:
        raise HookError("Runtime.BeforeSnapshotError", exc) from exc
    status, _headers, body = runtime.conn.request("GET", f"{_API}/restore/next")
    if status != 200:
        raise OSError(f"restore/next answered HTTP {status}: {body[:200]!r}")
    runtime.conn.close()
    ctl = socket.socket(fileno=int(os.environ.pop(CONTROL_FD)))
    copier = _copier()  # loaded now: part of the snapshot, not of every restore
    _flush()
    # What INIT built is the snapshot: keep the collector of every copy off it, so copies
    # neither scan it nor write to (and so duplicate) its pages.
    gc.collect()
    gc.freeze()
    ctl.send(b"serving")
    if _serve(ctl, copier):
        _restore_hooks(runtime, connect, report)


def _serve(ctl: socket.socket, copier: Any) -> bool:
    """Serve requests until the platform goes away; True in a copy (once it is set up).

    ``standby`` forks a copy that enters its session, cgroups and limits at once and then
    waits; ``go`` hands that waiting copy its environment and output pipe. Joining cgroups
    is the slow part of a copy's start (the kernel waits for a grace period per move), so
    the platform keeps a standby ready and a restore is just ``go``. ``fork`` does both at
    once, for when no standby is ready.
    """
    standby: dict[int, socket.socket] = {}  # pid -> our end of a waiting copy's socket

    def reap(signum: int = 0, frame: Any = None) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            waiting = standby.pop(pid, None)
            if waiting is not None:
                waiting.close()
            with contextlib.suppress(OSError):
                ctl.send(b"exit %d %d" % (pid, code))

    signal.signal(signal.SIGCHLD, reap)
    while True:
        request, fds = _receive(ctl)
        if request is None:
            os._exit(0)  # the platform is gone, or dropped the snapshot
        kind = request.get("kind", "fork")
        if kind == "copy":  # a template in a namespace sandbox: see ``snapcopy.py``
            try:
                pid = os.fork()
            except Exception as exc:
                for fd in fds:
                    os.close(fd)
                ctl.send(b"error " + str(exc).encode())
                continue
            if pid == 0:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                ctl.close()
                if copier is None:
                    os._exit(_SETUP_FAILED)  # its socket closes: the platform sees it failed
                copier.become_copy(fds[0])  # returns in the copy's runtime process only
                return True
            for fd in fds:
                os.close(fd)
            ctl.send(b"pid %d" % pid)
            continue
        if kind == "go":
            waiting = standby.pop(int(request["pid"]), None)
            try:
                if waiting is None:
                    raise OSError("no such standby copy")
                waiting.sendmsg([json.dumps(request).encode()], _rights(fds))
                ctl.send(b"went")
            except OSError as exc:
                ctl.send(b"error " + str(exc).encode())
            finally:
                for fd in fds:
                    os.close(fd)
                if waiting is not None:
                    waiting.close()
            continue
        ours = theirs = None
        try:
            if kind == "standby":
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            pid = os.fork()
        except Exception as exc:
            for fd in fds:
                os.close(fd)
            for end in (ours, theirs):
                if end is not None:
                    end.close()
            ctl.send(b"error " + str(exc).encode())
            continue
        if pid == 0:
            try:
                for other in standby.values():
                    other.close()
                if ours is not None:
                    ours.close()
                _enter(ctl, request)
                if theirs is not None:
                    request, fds = _receive(theirs)  # wait for "go"
                    theirs.close()
                    if request is None:
                        os._exit(0)
                _take(request, fds)
            except BaseException as exc:
                os.write(2, f"lambdalite snapstart: cannot restore: {exc}\n".encode())
                os._exit(_SETUP_FAILED)
            return True
        for fd in fds:
            os.close(fd)
        if theirs is not None and ours is not None:
            theirs.close()
            standby[pid] = ours
        ctl.send(b"pid %d" % pid)


def _copier() -> Any:
    """``snapcopy.py`` beside this file (loaded by path, like this module); None when it
    cannot be loaded (the process sandbox never needs it)."""
    from importlib.util import module_from_spec, spec_from_file_location

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        found = spec_from_file_location("_lambdalite_snapcopy", os.path.join(here, "snapcopy.py"))
        assert found is not None and found.loader is not None
        module = module_from_spec(found)
        found.loader.exec_module(module)
    except Exception as exc:
        sys.stderr.write(f"lambdalite snapstart: namespace restores unavailable: {exc}\n")
        return None
    return module


def _receive(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    data, ancillary, _flags, _addr = sock.recvmsg(_MAX_REQUEST, socket.CMSG_SPACE(4 * 4))
    fds = [
        int.from_bytes(payload[i : i + 4], sys.byteorder, signed=True)
        for level, kind, payload in ancillary
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
        for i in range(0, len(payload) - len(payload) % 4, 4)
    ]
    if not data and not ancillary:
        return None, fds
    return json.loads(data), fds


def _rights(fds: list[int]) -> list[tuple[int, int, bytes]]:
    if not fds:
        return []
    packed = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, packed)]


def _enter(ctl: socket.socket, request: dict[str, Any]) -> None:
    """In a fresh copy: a session, cgroups and limits of its own."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    ctl.close()
    os.setsid()
    for path in request.get("cgroups") or []:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)
    for res, soft, hard in request.get("rlimits") or []:
        resource.setrlimit(res, (soft, hard))


def _take(request: dict[str, Any], fds: list[int]) -> None:
    """In a copy about to run: its output pipe, its variables, fresh randomness."""
    output = fds[0] if fds else None
    if output is not None:
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
    for fd in fds[1:]:
        os.close(fd)
    os.environ.update(request.get("env") or {})
    random = sys.modules.get("random")
    if random is not None:
        random.seed()


def _restore_hooks(runtime: Any, connect: Callable[[str], Any], report: Report) -> None:
    runtime.conn = connect(os.environ["AWS_LAMBDA_RUNTIME_API"])
    _before, after = _hooks()
    try:
        _run_hooks(after)
    except Exception as exc:
        report(HookError("Runtime.AfterRestoreError", exc), "Runtime.AfterRestoreError",
               f"{_API}/restore/error")  # fmt: skip
        _flush()
        os._exit(1)
