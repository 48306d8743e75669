"""The file system of a sandbox whose root is a container image instead of the host's view.

The image's merged tree (built by the server, see ``lambdalite.images.rootfs``) is bound
read-only, ``nosuid``/``nodev``, over the sandbox's root; on top of it go the sandbox's own
``/tmp`` (of the function's ephemeral storage size, the only writable place, as on Lambda),
``/proc`` and ``/dev`` (``mounts.volatile_ops``), and, with the host network, the host's
resolver configuration at ``/etc/resolv.conf``. Nothing of the host's ``/usr`` or ``/etc`` is
shown: the image brings its own userland. The tree is expected to hold real directories at
``tmp``, ``proc``, ``dev`` and ``etc`` (the image store guarantees it); a tree without them is
refused here rather than mounted through whatever the image put there.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from lambdalite.sandbox.mounts import MS_NODEV, MS_NOSUID, Op, volatile_ops

_MOUNT_DIRS = ("tmp", "proc", "dev", "etc")
_RESOLV = "/etc/resolv.conf"


def image_ops(rootfs: Path, *, tmp_mb: int, host_network: bool) -> list[Op]:
    """Every step of the root of a sandbox running the image tree ``rootfs``."""
    for name in _MOUNT_DIRS:
        if not _is(rootfs / name, stat.S_ISDIR):
            raise OSError(errno.ENOTDIR, f"image root {rootfs} has no directory /{name}")
    ops: list[Op] = [("bind", "/", str(rootfs), True, MS_NOSUID | MS_NODEV)]
    ops.extend(volatile_ops(tmp_mb))
    host_resolv = os.path.realpath(_RESOLV)
    if (
        host_network
        and _is(rootfs / "etc/resolv.conf", stat.S_ISREG)
        and os.path.isfile(host_resolv)
    ):
        ops.append(("bind", _RESOLV, host_resolv, True, MS_NOSUID | MS_NODEV))
    return ops


def check_program(rootfs: Path, program: str, workdir: str) -> None:
    """Fail like ``exec`` would, before starting anything, for a program the image lacks.

    Only absolute paths are checked (without following links, which point into the image);
    a bare name is looked up on the image's ``PATH`` inside the sandbox.
    """
    if not program:
        raise OSError(errno.ENOENT, "the image sets no ENTRYPOINT or CMD, and ImageConfig none")
    if program.startswith("/") and not os.path.lexists(rootfs / program.lstrip("/")):
        raise OSError(errno.ENOENT, f"No such file or directory: {program!r} in the image")
    if not workdir.startswith("/"):
        raise OSError(errno.EINVAL, f"working directory {workdir!r} is not absolute")


def _is(path: Path, kind: object) -> bool:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return bool(kind(mode))  # type: ignore[operator]
