"""Copies of host directories handed into a sandbox whose root is already in place.

A namespace sandbox leaves the host's file system with ``pivot_root`` and then detaches the
host's mounts from its namespace. The detach frees those mounts, and the kernel waits for an
RCU grace period before it returns: from a tenth of a millisecond to several milliseconds on
a busy machine. Children forked ahead of need therefore pivot while they wait; what a cold
start still has to show them (the function's code, its layers) no longer has a path in
their view. ``open_tree(OPEN_TREE_CLONE)`` clones such a directory into a mount of its own,
outside every namespace, and returns a descriptor of it; the server sends the descriptor
along with the plan and the sandbox's init attaches it with ``move_mount`` (Linux 5.2).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from typing import Any

# The same numbers on every architecture (the syscall table was unified for new calls).
_OPEN_TREE = 428
_OPEN_TREE_CLONE = 1
_AT_RECURSIVE = 0x8000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def open_tree(path: str, recursive: bool = True) -> int:
    """A descriptor of a detached copy of the mount tree at ``path`` (close-on-exec); of the
    mount at ``path`` alone when not ``recursive``."""
    flags = _OPEN_TREE_CLONE | os.O_CLOEXEC | (_AT_RECURSIVE if recursive else 0)
    fd = _libc.syscall(_OPEN_TREE, -100, os.fsencode(path), flags)  # -100: AT_FDCWD
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"open_tree({path!r}): {os.strerror(err)}")
    return int(fd)


def available() -> bool:
    """Whether this kernel (and this process's privileges) can clone mount trees."""
    try:
        os.close(open_tree("/", recursive=False))  # one mount: freeing it is cheap
    except OSError as exc:
        if exc.errno not in (errno.ENOSYS, errno.EPERM, errno.EINVAL):
            raise
        return False
    return True


def detach_binds(ops: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], list[int]]:
    """``ops`` with each bind mount of a host path turned into an ``attach`` of a cloned
    tree, and the descriptors of those trees (in the order the ``attach`` steps number them).

    ``("bind", target, source, read_only, flags)`` becomes ``("attach", target, index,
    read_only, flags, is_dir)``. On failure every descriptor opened so far is closed.
    """
    fds: list[int] = []
    out: list[tuple[Any, ...]] = []
    try:
        for op in ops:
            if op[0] != "bind":
                out.append(op)
                continue
            _kind, target, source, read_only, flags = op
            fds.append(open_tree(source))
            out.append(("attach", target, len(fds) - 1, read_only, flags, os.path.isdir(source)))
    except BaseException:
        close_all(fds)
        raise
    return out, fds


def close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
