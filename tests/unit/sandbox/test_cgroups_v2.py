"""cgroup v2 code paths and CPU weights.

This host runs v1 with a controller-less cgroup2 mount; production hosts mostly run v2. The
v2 detection and limit writing are checked against a directory shaped like a delegated v2
subtree, and the membership and kill-all paths against the real cgroup2 mount when there is
one we may write to.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from lambdalite.sandbox import cgroups
from lambdalite.sandbox.cgroups import Cgroup, CgroupLayout, CgroupUnavailable

from .conftest import alive


def test_cpu_weight_follows_memory_like_lambda() -> None:
    assert cgroups.cpu_shares(1769) == 1024 and cgroups.cpu_weight(1769) == 100
    assert cgroups.cpu_shares(128) == 74 and cgroups.cpu_weight(128) == 7
    assert cgroups.cpu_shares(10240) == 5927 and cgroups.cpu_weight(10240) == 578
    assert cgroups.cpu_shares(1) == 2 and cgroups.cpu_weight(1) == 1  # kernel minimums


def fake_v2(root: Path, controllers: str) -> tuple[str, str]:
    """A delegated cgroup2 subtree at ``root``: files the kernel would provide."""
    server = root / "system.slice" / "lambdalite.service"
    server.mkdir(parents=True)
    (server / "cgroup.controllers").write_text(controllers + "\n")
    (server / "cgroup.subtree_control").write_text("")
    (server / "cgroup.procs").write_text("")
    sub = server / cgroups.ROOT_NAME
    sub.mkdir()
    for name in ("cgroup.procs", "cgroup.subtree_control"):
        (sub / name).write_text("")
    mountinfo = f"25 30 0:23 / {root} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    return mountinfo, "0::/system.slice/lambdalite.service\n"


def test_v2_detection_enables_memory_pids_and_cpu(tmp_path: Path) -> None:
    mountinfo, own = fake_v2(tmp_path, "cpuset cpu io memory pids")
    layout = cgroups.detect(mountinfo=mountinfo, proc_cgroup=own)
    server = tmp_path / "system.slice" / "lambdalite.service"
    assert layout == CgroupLayout(2, server / "lambdalite", None, None, True)
    # (A regular file keeps only the last write; the kernel's file accumulates them.)
    assert (server / "cgroup.subtree_control").read_text() == "+cpu"
    assert (server / "lambdalite" / "cgroup.subtree_control").read_text() == "+cpu"

    group = Cgroup(layout, "owner_env")
    group.memory_dir.mkdir()
    for name in ("memory.max", "memory.swap.max", "memory.oom.group", "pids.max", "cpu.weight"):
        (group.memory_dir / name).write_text("")
    group.create(256, 1024)
    values = {f.name: f.read_text() for f in group.memory_dir.iterdir()}
    assert values == {
        "memory.max": str(256 * 1024 * 1024),
        "memory.swap.max": "0",
        "memory.oom.group": "1",
        "pids.max": "1024",
        "cpu.weight": "14",
    }
    (group.memory_dir / "memory.peak").write_text("12345\n")
    (group.memory_dir / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert group.memory_peak_bytes() == 12345 and group.oom_killed()
    assert group.procs_files() == [os.fsencode(group.memory_dir / "cgroup.procs")]


def test_v2_without_memory_or_with_internal_processes(tmp_path: Path) -> None:
    mountinfo, own = fake_v2(tmp_path / "a", "cpu pids")
    with pytest.raises(CgroupUnavailable, match="memory controller not delegated"):
        cgroups.detect(mountinfo=mountinfo, proc_cgroup=own)
    mountinfo, own = fake_v2(tmp_path / "b", "memory")
    layout = cgroups.detect(mountinfo=mountinfo, proc_cgroup=own)
    assert layout.cpu is False and layout.pids_root is None


def writable_cgroup2() -> Path | None:
    """Our own cgroup in a mounted cgroup2 hierarchy, when we may create children in it."""
    if os.geteuid() != 0:
        return None
    mounts = cgroups._mounts(Path("/proc/self/mountinfo").read_text())
    _v1, own = cgroups._own_paths(Path("/proc/self/cgroup").read_text())
    v2 = next((m for m in mounts if m[2] == "cgroup2"), None)
    if v2 is None or own is None:
        return None
    base = cgroups._join(v2[1], v2[0], own)
    return base if os.access(base, os.W_OK) else None


def test_membership_and_kill_all_on_the_real_cgroup2_mount() -> None:
    base = writable_cgroup2()
    if base is None:
        pytest.skip("no writable cgroup2 hierarchy here")
    root = base / f"lambdalite-test-{uuid.uuid4().hex[:8]}"
    root.mkdir()
    layout = CgroupLayout(2, root, None)
    group = Cgroup(layout, f"{cgroups.owner_token()}_v2test")
    group.memory_dir.mkdir()
    files = group.procs_files()

    def enter() -> None:
        for path in files:
            with open(path, "w") as fh:
                fh.write("0")

    proc = subprocess.Popen(["sleep", "300"], preexec_fn=enter)
    try:
        assert group.pids() == {proc.pid}
        assert not group.remove()  # still populated
        assert group.memory_peak_bytes() == 0 and not group.oom_killed()  # no memory controller
        assert group.kill_all() == 1
        proc.wait(timeout=10)
        assert not alive(proc.pid)
        deadline = time.monotonic() + 5
        while not group.remove():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not group.memory_dir.exists()
    finally:
        proc.kill()
        proc.wait()
        group.remove()
        root.rmdir()
