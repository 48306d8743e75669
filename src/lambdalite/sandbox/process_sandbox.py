"""One process sandbox as the server sees it: its program, exit, output, memory and teardown.

``process.ProcessSandboxBackend`` builds these (and the namespace backend subclasses them);
see that module for how memory is enforced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
from typing import TYPE_CHECKING

from lambdalite.sandbox import cgroups, procfs
from lambdalite.sandbox.base import Limits, PeerSocket
from lambdalite.sandbox.output import LinePump

if TYPE_CHECKING:
    from lambdalite.sandbox.process import ProcessSandboxBackend

log = logging.getLogger(__name__)
_MIB = 1024 * 1024


class ProcessSandbox:
    """A spawned program in its own session; see ``lambdalite.sandbox.base.Sandbox``."""

    def __init__(
        self,
        backend: ProcessSandboxBackend,
        popen: subprocess.Popen[bytes] | None,
        pump: LinePump,
        group: cgroups.Cgroup | None,
        limits: Limits,
    ) -> None:
        self._backend = backend
        self._popen = popen
        self._pid = popen.pid if popen is not None else 0  # subclasses without Popen set it
        self._pump = pump
        self.cgroup = group
        self.limits = limits
        self.polled_enforcement = False
        self.uncounted: set[int] = set()  # processes whose memory is not the function's
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._known: dict[int, int] = {}
        self._peak_bytes = 0
        self._status_fd: int | None = None  # /proc/<pid>/status of the spawned process
        self._oom = False
        self._cgroup_gone = False  # removed: its figures live on in _oom and _peak_bytes
        self._destroying: asyncio.Task[None] | None = None
        self._pidfd: int | None = None
        self._watch_exit()

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def memory_enforced(self) -> bool:
        return self.cgroup is not None or self.polled_enforcement

    # -- exit -----------------------------------------------------------------------------
    def _watch_exit(self) -> None:
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self._loop.create_task(self._poll_exit())
            return
        self._loop.add_reader(self._pidfd, self._reap)

    async def _poll_exit(self) -> None:
        while not self._exited.done():
            self._reap()
            await asyncio.sleep(0.02)

    def _reap(self) -> None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 0xFF00  # reaped elsewhere: report exit status 255
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        if self._popen is not None:
            self._popen.returncode = code  # so Popen never reaps (or warns about) it again
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if not self._exited.done():
            self._exited.set_result(self._exit_code(code))

    def _exit_code(self, code: int) -> int:
        """The status to report for the spawned process's own ``code``."""
        return code

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def exit_status(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    # -- output ---------------------------------------------------------------------------
    def drain(self, flush_partial: bool = False) -> None:
        self._pump.drain(flush_partial)

    # -- memory ---------------------------------------------------------------------------
    def observe(self, table: dict[int, procfs.ProcInfo]) -> None:
        """Take one /proc snapshot into account (poll and off modes)."""
        found = procfs.members(table, self.pid, self._known.items())
        self._known = {p.pid: p.start_time for p in found.values()}
        total = sum(p.rss_bytes for p in found.values() if p.pid not in self.uncounted)
        self._peak_bytes = max(self._peak_bytes, total)
        if self.polled_enforcement and total > self.limits.memory_mb * _MIB and not self._oom:
            self._oom = True
            for pid in found:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def memory_peak_mb(self) -> int:
        # The cgroup is only charged for pages it faulted in first; shared libraries already in
        # the page cache are not, so the runtime's own high-water mark can be the larger figure.
        peak = max(self._peak_bytes, self._spawned_high_water())
        if self.cgroup is not None and not self._cgroup_gone:
            peak = max(peak, self.cgroup.memory_peak_bytes())
        return -(-peak // _MIB)

    def _spawned_high_water(self) -> int:
        # Read after every invocation: the file stays open (a pread is several times cheaper
        # than reopening it), and an open /proc file keeps naming this process even if its
        # pid is reused.
        if self._status_fd is None:
            if self._exited.done():
                return 0
            try:
                self._status_fd = os.open(f"/proc/{self.pid}/status", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return 0
        return _high_water_mark(self._status_fd)

    def oom_killed(self) -> bool:
        if self.cgroup is not None and not self._cgroup_gone:
            self._oom = self._oom or self.cgroup.oom_killed()
        return self._oom

    # -- runtime api ----------------------------------------------------------------------
    async def runtime_api_socket(self) -> socket.socket | None:
        return None  # the program shares the host network: the caller listens itself

    def owns_connection(self, conn: PeerSocket) -> bool:
        return True  # every sandbox runs as the same user: there is nothing to tell apart

    # -- teardown -------------------------------------------------------------------------
    def kill(self) -> None:
        if self._exited.done():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    async def destroy(self) -> None:
        if self._destroying is None:
            self._destroying = self._loop.create_task(self._destroy())
        await asyncio.shield(self._destroying)

    def _alive_members(self) -> set[int]:
        pids = set(self.cgroup.pids()) if self.cgroup is not None else set()
        found = procfs.members(procfs.scan(), self.pid, self._known.items())
        self._known.update((p.pid, p.start_time) for p in found.values())
        return pids | set(found)

    async def _destroy(self) -> None:
        try:
            self.kill()
            deadline = self._loop.time() + self._backend.options.destroy_timeout
            while self._loop.time() < deadline:
                if self.cgroup is not None:
                    self.cgroup.kill_all()
                members = self._alive_members()
                for pid in members:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                if not members and self._exited.done():
                    break
                await asyncio.sleep(0.005)
            self._pump.drain(flush_partial=True)
            self._pump.close()
            if self.cgroup is not None:
                # Keep what the cgroup knew: callers may ask after the teardown.
                self._oom = self.oom_killed()
                self._peak_bytes = max(self._peak_bytes, self.cgroup.memory_peak_bytes())
                self._cgroup_gone = True
                while not self.cgroup.remove() and self._loop.time() < deadline:
                    await asyncio.sleep(0.005)
        except Exception:
            log.exception("destroying sandbox %s failed", self.pid)
        finally:
            fd, self._status_fd = self._status_fd, None
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._backend._forget(self)


def _high_water_mark(status_fd: int) -> int:
    """Peak RSS the kernel recorded for one process (VmHWM), in bytes, from its open
    ``/proc/<pid>/status``; 0 once it is gone."""
    try:
        raw = os.pread(status_fd, 8192, 0)
        start = raw.index(b"VmHWM:") + 6
        return int(raw[start : raw.index(b"kB", start)]) * 1024
    except (OSError, ValueError):
        return 0
