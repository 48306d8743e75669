"""Cgroup detection, naming and the startup sweep of leftovers."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from lambdalite.sandbox import cgroups, procfs
from lambdalite.sandbox.cgroups import Cgroup, _mounts, _own_paths, owner_token

from .conftest import alive, backend, cgroups_available

HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
UNIFIED_MOUNTINFO = """\
25 30 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
"""


def test_mountinfo_parsing() -> None:
    hybrid = _mounts(HYBRID_MOUNTINFO)
    assert [(m[1], m[2]) for m in hybrid] == [
        ("/sys/fs/cgroup/memory", "cgroup"),
        ("/sys/fs/cgroup/pids", "cgroup"),
        ("/sys/fs/cgroup/unified", "cgroup2"),
    ]
    assert "memory" in hybrid[0][3]
    unified = _mounts(UNIFIED_MOUNTINFO)
    assert [(m[1], m[2]) for m in unified] == [("/sys/fs/cgroup", "cgroup2")]


def test_proc_cgroup_parsing() -> None:
    v1, v2 = _own_paths("4:memory:/a/b\n8:pids:/\n3:cpu,cpuacct:/c\n0::/\n")
    assert v1 == {"memory": "/a/b", "pids": "/", "cpu": "/c", "cpuacct": "/c"}
    assert v2 == "/"
    v1, v2 = _own_paths("0::/system.slice/lambdalite.service\n")
    assert (v1, v2) == ({}, "/system.slice/lambdalite.service")


def test_join_relative_to_the_mount_root() -> None:
    assert cgroups._join("/sys/fs/cgroup/memory", "/", "/x/y") == Path("/sys/fs/cgroup/memory/x/y")
    assert cgroups._join("/sys/fs/cgroup", "/", "/") == Path("/sys/fs/cgroup")
    # Inside a cgroup namespace the mount root is our own cgroup.
    assert cgroups._join("/sys/fs/cgroup", "/docker/abc", "/docker/abc/sub") == Path(
        "/sys/fs/cgroup/sub"
    )


def test_owner_token() -> None:
    token = owner_token()
    assert token is not None and token.startswith(f"{os.getpid()}-")
    assert owner_token(2**22 + 1) is None


def test_procfs_members_follow_sessions_and_descendants() -> None:
    me = procfs.read(os.getpid())
    assert me is not None and me.alive and me.rss_bytes > 0
    child = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        table = procfs.scan()
        found = procfs.members(table, child.pid, [])
        assert set(found) == {child.pid}
        # Known processes are tracked across sessions; so are their descendants.
        tracked = procfs.members(table, child.pid, [(os.getpid(), me.start_time)])
        assert {os.getpid(), child.pid} <= set(tracked)
        # A reused pid (different start time) is not.
        stale = procfs.members(table, child.pid, [(os.getpid(), me.start_time + 1)])
        assert os.getpid() not in stale
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(not cgroups_available(), reason="no writable memory cgroup on this host")
def test_startup_sweep_removes_leftovers_of_dead_servers_only() -> None:
    layout = cgroups.detect()
    dead = Cgroup(layout, "4194305-1_leftover")  # pids never reach this value
    live = Cgroup(layout, f"{owner_token(os.getppid())}_neighbour")
    for group in (dead, live):
        group.create(64, 16)

    def join(group: Cgroup) -> int:
        files = group.procs_files()

        def enter() -> None:
            for path in files:
                with open(path, "w") as fh:
                    fh.write(str(os.getpid()))

        # The shell exits at once; its background sleep is re-parented, as after a crash.
        out = subprocess.run(
            ["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"],
            preexec_fn=enter,
            capture_output=True,
            check=True,
        )
        return int(out.stdout)

    orphan, neighbour = join(dead), join(live)
    try:
        assert alive(orphan) and alive(neighbour)
        b = backend("cgroup")
        b.prepare()
        assert not alive(orphan)
        assert not any(d.exists() for d in dead.dirs)
        assert alive(neighbour) and all(d.exists() for d in live.dirs)
    finally:
        deadline = time.monotonic() + 5
        for group in (dead, live):
            while (group.kill_all() or not group.remove()) and time.monotonic() < deadline:
                time.sleep(0.01)
