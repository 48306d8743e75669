"""Process sandboxes forked from a zygote instead of started with ``exec``.

The process backend's counterpart of the namespace backend's zygote path: the zygote of the
function's interpreter (a child of the server, running as its user) forks the program, which
starts a session of its own, joins its cgroups, lowers its rlimits, puts its output on the
pipe and runs the preloaded runtime client (``launcher.py``, kind ``process``).

The program is the zygote's child, not the server's: the server watches it through the pidfd
the zygote sent, kills its process group and tracks its descendants as for any process
sandbox, and learns its exit status from the zygote, which reaps it and writes ``exit N`` on
the sandbox's control socket. A zygote that dies first closes that socket without a status;
the sandbox then ends when its pidfd says the program is gone, as killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lambdalite.sandbox import cgroups
from lambdalite.sandbox.base import Limits, OutputCallback
from lambdalite.sandbox.forkserver import Spawned, close_watched, receive
from lambdalite.sandbox.output import LinePump
from lambdalite.sandbox.process import ProcessSandbox

if TYPE_CHECKING:
    from lambdalite.sandbox.process import ProcessSandboxBackend
    from lambdalite.sandbox.zygotes import ZygotePool

_MIB = 1024 * 1024


def fork_process(
    backend: ProcessSandboxBackend,
    pool: ZygotePool,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    limits: Limits,
    on_output: OutputCallback,
    label: str,
    opt_dir: Path | None,
) -> ForkedProcessSandbox | None:
    """A sandbox forked from a zygote, or None when ``argv`` must be exec'd instead."""
    # Programs of this backend see host paths: the code and layers are where they are.
    libraries: dict[str, Path | None] = {str(cwd): cwd}
    if opt_dir is not None:
        libraries[str(opt_dir)] = opt_dir
    interpreter = pool.interpreter_for(argv, env, libraries)
    if interpreter is None or not cwd.is_dir():
        return None
    plan = {"argv": list(argv), "env": dict(env), "cwd": str(cwd), "rlimits": rlimits(limits)}
    forked = pool.spawn(
        interpreter,
        os.path.dirname(argv[1]),
        plan,
        "process",
        limits,
        lambda wanted, ahead: backend._new_cgroup("ahead" if ahead else label, wanted),
    )
    if forked is None:
        return None
    spawned, group = forked
    pump = LinePump(spawned.output_fd, on_output, asyncio.get_running_loop())
    return ForkedProcessSandbox(backend, spawned, pump, group, limits)


def rlimits(limits: Limits) -> list[tuple[int, int, int]]:
    """The process backend's rlimits, capped by this process's hard limits."""
    found = []
    for res, value in (
        (resource.RLIMIT_NOFILE, limits.nofile),
        (resource.RLIMIT_FSIZE, limits.ephemeral_mb * _MIB),
    ):
        _soft, hard = resource.getrlimit(res)
        capped = value if hard == resource.RLIM_INFINITY else min(value, hard)
        found.append((res, capped, capped))
    return found


class ForkedProcessSandbox(ProcessSandbox):
    """A process sandbox whose program a zygote forked; see the module docstring."""

    def __init__(
        self,
        backend: ProcessSandboxBackend,
        spawned: Spawned,
        pump: LinePump,
        group: cgroups.Cgroup | None,
        limits: Limits,
    ) -> None:
        self._child_pidfd: int | None = spawned.pidfd
        self._ctl: Any = spawned.ctl
        self._reported: int | None = None
        super().__init__(backend, None, pump, group, limits)
        self._pid = spawned.pid

    def _watch_exit(self) -> None:
        self._loop.add_reader(self._ctl.fileno(), self._read_control)

    def _read_control(self) -> None:
        ctl = self._ctl
        if ctl is None:
            return
        messages, closed = receive(ctl)
        for message, fds in messages:
            if message.startswith(b"exit "):
                self._reported = int(message[5:])
            for fd in fds:
                os.close(fd)
        if self._reported is not None:
            self._close_control()
            self._finish(self._reported)
        elif closed:
            # The zygote is gone: the program (now someone else's child) ends when it ends.
            self._close_control()
            if self._child_pidfd is not None:
                self._loop.add_reader(self._child_pidfd, self._finish, -signal.SIGKILL)

    def _close_control(self) -> None:
        ctl, self._ctl = self._ctl, None
        close_watched(self._loop, ctl)

    def _finish(self, code: int) -> None:
        pidfd, self._child_pidfd = self._child_pidfd, None
        if pidfd is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(pidfd)
            os.close(pidfd)
        if not self._exited.done():
            self._exited.set_result(code)

    def kill(self) -> None:
        if self._exited.done():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self._child_pidfd is not None:  # before its session exists, the group does not
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._child_pidfd, signal.SIGKILL)
