"""The file system steps of a sandbox's plan, carried out by its init (``inside.py``).

The server describes a sandbox's root as a list of steps (``mounts.py`` makes them): files
written into it, directories and symbolic links made, host paths bound read-only, tmpfs and
proc mounted, and, for children that pivoted before their plan came, ``attach`` steps that
mount a tree the server cloned (``mounttree.py``). Standard library only and no imports
from lambdalite: the launcher loads it by path, next to ``inside.py``.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
_MNT_DETACH = 2
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
_MOVE_MOUNT, _MOVE_MOUNT_F_EMPTY_PATH = 429, 4  # the same number on every architecture
_AT_FDCWD = -100

libc = ctypes.CDLL(None, use_errno=True)  # the process's own C library, already loaded


def check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str) -> None:
    check(
        libc.mount(
            None if source is None else source.encode(),
            target.encode(),
            None if fstype is None else fstype.encode(),
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {source or fstype} on {target}",
    )


def start(root: str) -> None:
    """Keep this mount namespace's mounts to itself and start ``root`` on a small tmpfs."""
    mount(None, "/", None, MS_REC | MS_PRIVATE, "")
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m,nr_inodes=4096")


def apply(root: str, op: tuple[Any, ...], trees: list[int] | None = None) -> None:
    """Carry out one step under ``root`` ("" once pivoted); ``trees`` are the descriptors
    that ``attach`` steps name by index."""
    kind, target = op[0], root + op[1]
    if kind == "dir":
        os.makedirs(target, op[2], exist_ok=True)
        os.chmod(target, op[2])
    elif kind == "symlink":
        os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
        os.symlink(op[2], target)
    elif kind == "file":
        os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, op[3])
        try:
            os.write(fd, op[2])
        finally:
            os.close(fd)
    elif kind == "bind":  # ("bind", target, source, read_only, extra flags)
        source, read_only, flags = op[2], op[3], op[4]
        _mountpoint(target, os.path.isdir(source))
        mount(source, target, None, MS_BIND | MS_REC, "")
        _restrict(target, read_only, flags)
    elif kind == "attach":  # ("attach", target, index in trees, read_only, flags, is_dir)
        if not trees or op[2] >= len(trees):
            raise OSError(0, f"no mount tree for {op[1]}")
        attach(trees[op[2]], target, op[3], op[4], op[5])
    elif kind in ("tmpfs", "proc"):  # (kind, target, flags, options)
        os.makedirs(target, 0o755, exist_ok=True)
        mount(kind, target, kind, op[2], op[3])
    else:
        raise OSError(0, f"unknown file system step {kind!r}")


def attach(tree: int, target: str, read_only: bool, flags: int, is_dir: bool) -> None:
    """Mount the detached tree ``tree`` (from the server's ``open_tree``) at ``target``,
    and close it."""
    _mountpoint(target, is_dir)
    path = target.encode()
    moved = libc.syscall(_MOVE_MOUNT, tree, b"", _AT_FDCWD, path, _MOVE_MOUNT_F_EMPTY_PATH)
    check(moved, f"move_mount {target}")
    os.close(tree)
    _restrict(target, read_only, flags)


def enter(root: str) -> None:
    """Make ``root`` the root of the mount namespace and let go of the host's mounts (the
    detach waits for an RCU grace period: children forked ahead do it while they wait)."""
    os.chdir(root)
    number = _PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise OSError(0, f"pivot_root: unknown architecture {os.uname().machine}")
    check(libc.syscall(number, b".", b"."), "pivot_root")
    check(libc.umount2(b".", _MNT_DETACH), "detach the host root")
    os.chdir("/")


def seal() -> None:
    """Make the root read-only, once everything it shows is in place."""
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, "")


def _mountpoint(path: str, is_dir: bool) -> None:
    """Create ``path`` (in the new root) as a directory or an empty file."""
    if is_dir:
        os.makedirs(path, 0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        if not os.path.exists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))


def _restrict(target: str, read_only: bool, flags: int) -> None:
    """Remount the bind mount at ``target`` read-only and with ``flags``, when asked."""
    if read_only or flags:
        remount = MS_REMOUNT | MS_BIND | flags | (MS_RDONLY if read_only else 0)
        mount(None, target, None, remount, "")
