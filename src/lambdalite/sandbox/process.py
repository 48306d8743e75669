"""Sandboxes made of plain processes: own session, rlimits, and cgroups or /proc polling.

Each sandbox's program starts in a session of its own (so its process group is known and a
terminal signal never reaches it) with ``RLIMIT_NOFILE`` and an ``RLIMIT_FSIZE`` equal to the
ephemeral storage size (a single file can never outgrow /tmp). Memory is enforced in one of
three modes, chosen by ``memory_enforcement``:

* ``cgroup``: a memory (and pids) cgroup per sandbox, joined by the child *before* it execs, so
  not even the runtime's first allocation escapes the limit; the kernel's OOM killer enforces it.
* ``poll``: a shared task reads /proc periodically, sums the RSS of every process of each
  sandbox and kills a sandbox whose total exceeds its limit. Coarser, but works anywhere.
* ``off``: the same tracking without kills (peak memory is still reported).

``auto`` picks ``cgroup`` when a writable memory controller is found, else ``poll``.

The sandbox objects themselves (exit, output, memory, teardown) are in ``process_sandbox.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import resource
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lambdalite.sandbox import cgroups, procfs
from lambdalite.sandbox.base import Layout, Limits, OutputCallback
from lambdalite.sandbox.output import LinePump
from lambdalite.sandbox.process_sandbox import ProcessSandbox as ProcessSandbox

if TYPE_CHECKING:
    from lambdalite.config import Settings
    from lambdalite.sandbox.zygotes import ForkableRuntime, ZygotePool

log = logging.getLogger(__name__)
_MIB = 1024 * 1024
MODES = ("auto", "cgroup", "poll", "off")
# A process sandbox cannot change a program's root, so it cannot run a container image.
IMAGES_NEED_NAMESPACES = (
    "container image functions need namespace sandboxes (an image is the sandbox's root file "
    "system); this server runs process sandboxes: start it as root with --sandbox auto or "
    "namespace"
)


@dataclass(frozen=True)
class SandboxOptions:
    memory_enforcement: str = "auto"  # auto | cgroup | poll | off
    poll_interval: float = 0.1  # seconds between /proc scans in poll and off modes
    cgroup_parent: Path | None = None  # a delegated cgroup to nest under, instead of our own
    destroy_timeout: float = 2.0  # how long destroy waits for processes to disappear

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxOptions:
        return cls(memory_enforcement=settings.memory_enforcement)


class ProcessSandboxBackend:
    """Spawns ``ProcessSandbox`` instances; see the module docstring for the modes."""

    def __init__(self, options: SandboxOptions | Settings | None = None) -> None:
        if options is None:
            options = SandboxOptions()
        elif not isinstance(options, SandboxOptions):
            options = SandboxOptions.from_settings(options)
        self.options = options
        if self.options.memory_enforcement not in MODES:
            raise ValueError(f"memory_enforcement must be one of {MODES}")
        self._layout: cgroups.CgroupLayout | None = None
        self._mode: str | None = None
        self.unavailable_reason: str | None = None
        self._owner = cgroups.owner_token() or str(os.getpid())
        self._sandboxes: set[ProcessSandbox] = set()
        self._poller: asyncio.Task[None] | None = None
        self.zygotes: ZygotePool | None = None

    def use_zygotes(self, runtime: ForkableRuntime, ahead_idle: float = 10.0) -> None:
        """Fork the commands ``runtime`` describes from pre-initialized interpreters
        (``zygotes.py``) instead of starting a new one per sandbox; children forked ahead
        of need are given up after ``ahead_idle`` seconds without a cold start."""
        from lambdalite.sandbox.zygotes import ZygotePool

        self.zygotes = ZygotePool(runtime, self._zygote_markers(), ahead_idle=ahead_idle)

    def _zygote_markers(self) -> list[str]:
        return [f"--owner={self._owner}"]

    def prestart_zygote(self, argv: Sequence[str], runtime_dir: Path) -> bool:
        """Start, without waiting, the zygote that cold starts of the runtime command ``argv``
        (host paths, the runtime client under ``runtime_dir``) fork from; False when such
        cold starts are exec'd (no zygotes, or a command a zygote cannot stand in for)."""
        if self.zygotes is None or self.zygotes.interpreter_for(argv, {}, {}) is None:
            return False
        program = self._zygote_program(argv, runtime_dir)
        self.zygotes.prestart(program[0], os.path.dirname(program[1]))
        return True

    def _zygote_program(self, argv: Sequence[str], runtime_dir: Path) -> list[str]:
        """``argv`` as a sandbox's program sees it (its first two words key the zygote)."""
        return list(argv)

    @property
    def mode(self) -> str:
        """The resolved mode: ``cgroup``, ``poll`` or ``off``."""
        self.prepare()
        assert self._mode is not None
        return self._mode

    @property
    def cgroup_version(self) -> int | None:
        self.prepare()
        return self._layout.version if self._layout else None

    def layout(self, code_dir: Path, runtime_dir: Path, opt_dir: Path | None = None) -> Layout:
        """Programs see the host's file system: paths stay what they are."""
        return Layout.identity(code_dir, runtime_dir, opt_dir)

    @property
    def runtime_api_address(self) -> str | None:
        return None

    @property
    def isolation(self) -> str:
        memory = {"cgroup": "cgroup limits", "poll": "memory polled", "off": "no memory limit"}
        return (
            f"process sandbox ({memory[self.mode]}): functions run as this server's user and "
            "see its files, processes and network"
        )

    def prepare(self) -> None:
        """Resolve the mode and sweep cgroups left by a crashed server; runs once.

        Raises ``RuntimeError`` when ``cgroup`` mode was asked for and is not available.
        """
        if self._mode is not None:
            return
        wanted = self.options.memory_enforcement
        if wanted in ("auto", "cgroup"):
            try:
                self._layout = cgroups.detect(self.options.cgroup_parent)
            except cgroups.CgroupUnavailable as exc:
                self.unavailable_reason = str(exc)
                if wanted == "cgroup":
                    raise RuntimeError(f"cgroup memory enforcement unavailable: {exc}") from exc
                log.info("cgroups unavailable (%s); enforcing memory by polling", exc)
        self._mode = "cgroup" if self._layout else ("off" if wanted == "off" else "poll")
        if self._layout is not None:
            self._sweep(self._layout)

    @staticmethod
    def _sweep(layout: cgroups.CgroupLayout) -> None:
        for group in cgroups.leftovers(layout):
            deadline = time.monotonic() + 2.0
            while not (group.kill_all() == 0 and group.remove()):
                if time.monotonic() > deadline:
                    log.warning("could not remove leftover cgroup %s", group.memory_dir)
                    break
                time.sleep(0.01)
            else:
                log.info("removed leftover sandbox cgroup %s", group.memory_dir.name)

    def spawn(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        limits: Limits,
        on_output: OutputCallback,
        label: str = "",
        runtime_dir: Path | None = None,
        opt_dir: Path | None = None,
        rootfs: Path | None = None,
    ) -> ProcessSandbox:
        # The program sees host paths; the environment names the layers' tree (``opt_dir``).
        if rootfs is not None:
            raise OSError(errno.EOPNOTSUPP, IMAGES_NEED_NAMESPACES)
        self.prepare()
        loop = asyncio.get_running_loop()
        if self.zygotes is not None:
            from lambdalite.sandbox.forked import fork_process  # it builds on this module

            forked = fork_process(
                self, self.zygotes, argv, env, cwd, limits, on_output, label, opt_dir
            )
            if forked is not None:
                forked.polled_enforcement = forked.cgroup is None and self._mode != "off"
                self._track(forked)
                return forked
        group = self._new_cgroup(label, limits)
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            popen = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                start_new_session=True,
                preexec_fn=_child_setup(group.procs_files() if group else [], limits),
            )
        except BaseException as exc:
            os.close(read_fd)
            if group is not None:
                group.remove()
            if isinstance(exc, subprocess.SubprocessError):
                raise OSError(f"cannot start {argv[0]!r}: {exc}") from exc
            raise
        finally:
            os.close(write_fd)
        sandbox = ProcessSandbox(self, popen, LinePump(read_fd, on_output, loop), group, limits)
        sandbox.polled_enforcement = group is None and self._mode != "off"
        self._track(sandbox)
        return sandbox

    def _new_cgroup(self, label: str, limits: Limits) -> cgroups.Cgroup | None:
        """A fresh cgroup with ``limits`` for one sandbox; None when cgroups are not in use."""
        if self._layout is None:
            return None
        safe = re.sub(r"[^A-Za-z0-9.-]", "", label)[:40]
        group = cgroups.Cgroup(self._layout, f"{self._owner}_{safe}-{uuid.uuid4().hex[:8]}")
        try:
            group.create(limits.memory_mb, limits.nproc)
        except OSError as exc:
            log.warning("cannot create cgroup %s (%s); polling instead", group.dirs, exc)
            group.remove()
            return None
        return group

    def _track(self, sandbox: ProcessSandbox) -> None:
        """Start managing ``sandbox`` (destroyed on close; polled when it has no cgroup)."""
        self._sandboxes.add(sandbox)
        if sandbox.cgroup is None and self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._poll_loop())

    def _forget(self, sandbox: ProcessSandbox) -> None:
        self._sandboxes.discard(sandbox)

    async def _poll_loop(self) -> None:
        try:
            while True:
                polled = [s for s in self._sandboxes if s.cgroup is None]
                if not polled:
                    break
                table = await asyncio.to_thread(procfs.scan)
                for sandbox in polled:
                    sandbox.observe(table)
                await asyncio.sleep(self.options.poll_interval)
        finally:
            self._poller = None

    async def close(self) -> None:
        await asyncio.gather(*(s.destroy() for s in list(self._sandboxes)))
        if self.zygotes is not None:
            self.zygotes.close()
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller


def _child_setup(procs_files: list[bytes], limits: Limits) -> Callable[[], None]:
    """The pre-exec hook: join the cgroups, then lower rlimits. Only syscalls, no locks."""
    rlimits = []
    for res, value in (
        (resource.RLIMIT_NOFILE, limits.nofile),
        (resource.RLIMIT_FSIZE, limits.ephemeral_mb * _MIB),
    ):
        _soft, hard = resource.getrlimit(res)
        capped = value if hard == resource.RLIM_INFINITY else min(value, hard)
        rlimits.append((res, capped))

    def setup() -> None:
        pid = str(os.getpid()).encode()
        for path in procs_files:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        for res, value in rlimits:
            resource.setrlimit(res, (value, value))

    return setup
