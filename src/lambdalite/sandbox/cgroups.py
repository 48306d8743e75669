"""Linux control groups for sandboxes: memory limit, peak, OOM detection and reliable kill-all.

Both hierarchies are supported, detected from /proc/self/mountinfo and /proc/self/cgroup:

* v1 (separate ``memory``, ``pids`` and ``cpu`` hierarchies, as on hosts in hybrid mode),
* v2 (the unified hierarchy, the common case on current hosts).

Limits per sandbox: memory (swap off, so the limit is a hard ceiling; tmpfs pages a sandbox
writes are charged to it too), a pids limit, and a CPU weight proportional to memory as on
Lambda, where 1,769 MB buy one vCPU: ``cpu.shares`` (1024 per vCPU) on v1, ``cpu.weight``
(100 per vCPU) on v2. A weight, not a quota: an idle host lends its CPU to whoever needs it,
and under contention each sandbox gets its memory's share.

Sandbox cgroups are created *below the cgroup this process runs in* (or below an explicitly
delegated directory), in ``<parent>/lambdalite/<owner>_<id>``: nesting keeps whatever limits the
host put on the server itself, and the owner part (pid and start time of the server process)
lets a starting server sweep the leftovers of a crashed one without touching the cgroups of
another server that is alive and shares the same parent.

On v2 the parent must allow enabling controllers for its children, which the kernel refuses
while the parent itself holds processes ("no internal processes"); in that case cgroups are
reported unavailable and the caller falls back to polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ROOT_NAME = "lambdalite"
_MIB = 1024 * 1024
MB_PER_VCPU = 1769


def cpu_shares(memory_mb: int) -> int:
    """cgroup v1 ``cpu.shares`` for a function of ``memory_mb`` (1024 = one vCPU)."""
    return max(2, min(262144, memory_mb * 1024 // MB_PER_VCPU))


def cpu_weight(memory_mb: int) -> int:
    """cgroup v2 ``cpu.weight`` for a function of ``memory_mb`` (100 = one vCPU)."""
    return max(1, min(10000, memory_mb * 100 // MB_PER_VCPU))


@dataclass(frozen=True)
class CgroupLayout:
    version: int  # 1 or 2
    memory_root: Path  # <parent>/lambdalite in the memory (v1) or unified (v2) hierarchy
    pids_root: Path | None  # v1 only: <parent>/lambdalite in the pids hierarchy
    cpu_root: Path | None = None  # v1 only: <parent>/lambdalite in the cpu hierarchy
    cpu: bool = False  # whether CPU weights are set (v1: cpu_root exists; v2: delegated)


class CgroupUnavailable(Exception):
    """Cgroups cannot be used here; the message says why."""


def _mounts(mountinfo: str) -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fs type, super options) of every cgroup mount."""
    found = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3 or rfields[0] not in ("cgroup", "cgroup2"):
            continue
        found.append((fields[3], fields[4], rfields[0], set(rfields[2].split(","))))
    return found


def _own_paths(proc_cgroup: str) -> tuple[dict[str, str], str | None]:
    """The v1 cgroup path per controller, and the v2 path, of this process."""
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2 = parts[2]
        for ctrl in parts[1].split(","):
            if ctrl:
                v1[ctrl] = parts[2]
    return v1, v2


def _join(mount_point: str, mount_root: str, path: str) -> Path:
    if mount_root != "/" and (path == mount_root or path.startswith(mount_root + "/")):
        path = path[len(mount_root) :]
    rel = path.strip("/")
    return Path(mount_point) / rel if rel else Path(mount_point)


def _write(path: Path | str, value: str) -> None:
    # O_TRUNC as a shell's ">" does: meaningless to cgroupfs, right for anything else.
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _try_write(path: Path | str, value: str) -> bool:
    try:
        _write(path, value)
    except OSError:
        return False
    return True


def detect(
    parent: Path | None = None, *, mountinfo: str | None = None, proc_cgroup: str | None = None
) -> CgroupLayout:
    """Find a writable place for sandbox cgroups, creating ``lambdalite`` directories.

    ``parent`` overrides the cgroup the server runs in (a delegated subtree).
    ``mountinfo`` and ``proc_cgroup`` replace this process's ``/proc/self`` files (tests).
    Raises ``CgroupUnavailable`` with the reason when none is usable.
    """
    try:
        if mountinfo is None:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        if proc_cgroup is None:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        mounts = _mounts(mountinfo)
        own_v1, own_v2 = _own_paths(proc_cgroup)
    except OSError as exc:
        raise CgroupUnavailable(f"cannot read /proc: {exc}") from exc
    v1_memory = next((m for m in mounts if m[2] == "cgroup" and "memory" in m[3]), None)
    if v1_memory is not None:
        base = parent or _join(v1_memory[1], v1_memory[0], own_v1.get("memory", "/"))
        memory_root = _make_dir(base / ROOT_NAME)
        pids_root = _v1_root(mounts, own_v1, "pids")
        cpu_root = _v1_root(mounts, own_v1, "cpu")
        return CgroupLayout(1, memory_root, pids_root, cpu_root, cpu_root is not None)
    v2 = next((m for m in mounts if m[2] == "cgroup2"), None)
    if v2 is None or own_v2 is None:
        raise CgroupUnavailable("no memory controller is mounted")
    base = parent or _join(v2[1], v2[0], own_v2)
    try:
        available = (base / "cgroup.controllers").read_text().split()
    except OSError as exc:
        raise CgroupUnavailable(f"cannot read {base}/cgroup.controllers: {exc}") from exc
    if "memory" not in available:
        raise CgroupUnavailable(f"memory controller not delegated to {base}")
    wanted = ["memory"] + (["pids"] if "pids" in available else [])
    _enable(base, wanted)
    root = _make_dir(base / ROOT_NAME)
    _enable(root, wanted)
    cpu = False
    if "cpu" in available:  # a weight is welcome, not required
        try:
            _enable(base, ["cpu"])
            _enable(root, ["cpu"])
            cpu = True
        except (CgroupUnavailable, OSError):
            cpu = False
    return CgroupLayout(2, root, None, None, cpu)


def _v1_root(
    mounts: list[tuple[str, str, str, set[str]]], own: dict[str, str], controller: str
) -> Path | None:
    """``<own cgroup>/lambdalite`` in the v1 hierarchy of ``controller``, when writable."""
    mount = next((m for m in mounts if m[2] == "cgroup" and controller in m[3]), None)
    if mount is None:
        return None
    base = _join(mount[1], mount[0], own.get(controller, "/"))
    try:
        return _make_dir(base / ROOT_NAME)
    except CgroupUnavailable:
        return None


def _enable(directory: Path, controllers: list[str]) -> None:
    current = (directory / "cgroup.subtree_control").read_text().split()
    missing = [c for c in controllers if c not in current]
    if not missing:
        return
    try:
        _write(directory / "cgroup.subtree_control", " ".join("+" + c for c in missing))
    except OSError as exc:
        hint = " (it holds processes itself)" if exc.errno == errno.EBUSY else ""
        raise CgroupUnavailable(f"cannot enable {missing} in {directory}{hint}: {exc}") from exc


def _make_dir(path: Path) -> Path:
    try:
        path.mkdir(exist_ok=True)
    except OSError as exc:
        raise CgroupUnavailable(f"cannot create {path}: {exc}") from exc
    if not os.access(path / "cgroup.procs", os.W_OK):
        raise CgroupUnavailable(f"{path}/cgroup.procs is not writable")
    return path


def owner_token(pid: int | None = None) -> str | None:
    """``<pid>-<start time>`` of a live process, None when it does not exist."""
    pid = os.getpid() if pid is None else pid
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return f"{pid}-{fields[19]}"


class Cgroup:
    """The cgroup directories of one sandbox (one per hierarchy on v1, one on v2)."""

    def __init__(self, layout: CgroupLayout, name: str) -> None:
        self.version = layout.version
        self.name = name
        self.memory_dir = layout.memory_root / name
        self.pids_dir = layout.pids_root / name if layout.pids_root else None
        self.cpu_dir = layout.cpu_root / name if layout.cpu_root else None
        self.cpu = layout.cpu
        # Counter files read after every invocation, kept open: a pread of an open cgroup
        # file costs about a microsecond, an open-read-close some twenty.
        self._files: dict[str, int] = {}

    @property
    def dirs(self) -> list[Path]:
        return [d for d in (self.memory_dir, self.pids_dir, self.cpu_dir) if d is not None]

    def create(self, limits_memory_mb: int, nproc: int) -> None:
        """Create the directories and set the limits; raises OSError on failure.

        Memory is the one limit that must hold; the others are set when the controller is
        there (a host without the pids or cpu controller still runs functions).
        """
        # Plain strings: this runs for every sandbox, often in a burst.
        for directory in self.dirs:
            with contextlib.suppress(FileExistsError):
                os.mkdir(directory)
        limit = str(limits_memory_mb * _MIB)
        memory = f"{self.memory_dir}/"
        if self.version == 1:
            _write(memory + "memory.limit_in_bytes", limit)
            # Without swap the limit is a hard RSS ceiling, as in Lambda.
            _try_write(memory + "memory.swappiness", "0")
            _try_write(memory + "memory.memsw.limit_in_bytes", limit)
            if self.pids_dir is not None:
                _try_write(f"{self.pids_dir}/pids.max", str(nproc))
            if self.cpu_dir is not None:
                _try_write(f"{self.cpu_dir}/cpu.shares", str(cpu_shares(limits_memory_mb)))
        else:
            _write(memory + "memory.max", limit)
            _try_write(memory + "memory.swap.max", "0")
            # One OOM kill takes the whole sandbox down, like the platform's reset.
            _try_write(memory + "memory.oom.group", "1")
            _try_write(memory + "pids.max", str(nproc))
            if self.cpu:
                _try_write(memory + "cpu.weight", str(cpu_weight(limits_memory_mb)))

    def resize(self, limits_memory_mb: int) -> None:
        """Change the memory limit (and the CPU weight that follows it) of a cgroup made by
        ``create``; raises OSError when the memory limit cannot be set."""
        limit = str(limits_memory_mb * _MIB)
        if self.version == 1:
            memory, memsw = self.memory_dir / "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"
            # v1 keeps memory <= memory+swap: a raise goes to the larger one first.
            if not _try_write(memory, limit):
                _try_write(self.memory_dir / memsw, limit)
                _write(memory, limit)
            _try_write(self.memory_dir / memsw, limit)
            if self.cpu_dir is not None:
                _try_write(self.cpu_dir / "cpu.shares", str(cpu_shares(limits_memory_mb)))
        else:
            _write(self.memory_dir / "memory.max", limit)
            if self.cpu:
                _try_write(self.memory_dir / "cpu.weight", str(cpu_weight(limits_memory_mb)))

    def procs_files(self) -> list[bytes]:
        """Paths a child writes its own pid to (before exec) to join every hierarchy."""
        return [os.fsencode(d / "cgroup.procs") for d in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for directory in self.dirs:
            try:
                text = (directory / "cgroup.procs").read_text()
            except OSError:
                continue
            found.update(int(p) for p in text.split())
        return found

    def kill_all(self) -> int:
        """SIGKILL every member once; returns how many were signalled."""
        if self.version == 2:
            # Counted first: killed members leave the group as soon as the kernel reaps them.
            members = self.pids()
            if _try_write(self.memory_dir / "cgroup.kill", "1"):
                return len(members)
        count = 0
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                count += 1
        return count

    def _read(self, name: str) -> bytes | None:
        fd = self._files.get(name)
        if fd is None:
            try:
                fd = os.open(self.memory_dir / name, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None
            self._files[name] = fd
        try:
            return os.pread(fd, 4096, 0)
        except OSError:
            return None

    def close_files(self) -> None:
        """Close the counter files kept open (reading again reopens them)."""
        files, self._files = self._files, {}
        for fd in files.values():
            with contextlib.suppress(OSError):
                os.close(fd)

    def memory_peak_bytes(self) -> int:
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        for candidate in (name, "memory.current", "memory.usage_in_bytes"):
            raw = self._read(candidate)
            if raw is not None and raw.strip().isdigit():
                return int(raw)
        return 0

    def oom_killed(self) -> bool:
        raw = self._read("memory.oom_control" if self.version == 1 else "memory.events")
        for line in (raw or b"").splitlines():
            key, _, value = line.partition(b" ")
            if key == b"oom_kill":
                return int(value or 0) > 0
        return False

    def remove(self) -> bool:
        """rmdir every directory; False while some still hold processes."""
        self.close_files()
        done = True
        for directory in self.dirs:
            try:
                directory.rmdir()
            except FileNotFoundError:
                continue
            except OSError:
                done = False
        return done

    async def dispose(self) -> bool:
        """Kill what is left in the cgroup and remove it, waiting (about two seconds at most)
        for the kernel to let its processes go: a killed process leaves its cgroup only once
        it has exited. False, with a warning, if the cgroup stays."""
        for _ in range(400):
            if self.kill_all() == 0 and self.remove():
                return True
            await asyncio.sleep(0.005)
        log.warning("could not remove cgroup %s", self.dirs)
        return False


def leftovers(layout: CgroupLayout) -> list[Cgroup]:
    """Sandbox cgroups whose owning server process no longer exists."""
    stale: dict[str, Cgroup] = {}
    me = owner_token()
    roots = [r for r in (layout.memory_root, layout.pids_root, layout.cpu_root) if r is not None]
    for root in roots:
        try:
            entries = list(root.iterdir())
        except OSError:
            continue
        for entry in entries:
            owner, sep, _ = entry.name.partition("_")
            if not sep or not entry.is_dir() or owner == me or entry.name in stale:
                continue
            pid_text = owner.split("-", 1)[0]
            if pid_text.isdigit() and owner_token(int(pid_text)) == owner:
                continue  # another live server's sandbox
            stale[entry.name] = Cgroup(layout, entry.name)
    return list(stale.values())
