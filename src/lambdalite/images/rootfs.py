"""The root file system of an image: its layers merged into one tree, whiteouts applied.

Layers are applied bottom to top. In each directory of a layer, its whiteouts are applied
first (``.wh..wh..opq`` empties the directory as the layers below left it, ``.wh.<name>``
removes that entry), then its entries are added, replacing what lower layers had at the same
path; a directory replaces a file or symlink and vice versa, as overlay file systems do.
Regular files are hard links to the unpacked layers (a copy where linking is impossible), so a
merged tree costs inodes, not bytes. Nothing here follows a symlink of the image: every path is
handled with ``lstat``/no-follow calls, and the tree is built only from real directories.

The tree is what a sandbox mounts read-only as ``/``. It is built once per image digest and
published by ``rename``. A sandbox mounts its own file systems at ``/tmp``, ``/proc`` and
``/dev`` and may bind the host's resolver configuration at ``/etc/resolv.conf``, so those
mountpoints are made to exist here as real directories (or a regular file) whatever the image
has there; ``/etc/hosts`` names ``localhost`` when the image brings none.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

OPAQUE = ".wh..wh..opq"
WHITEOUT = ".wh."
MOUNT_DIRS = ("tmp", "proc", "dev")
HOSTS = b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def _remove(path: Path) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _real_dir(path: Path) -> None:
    """Make ``path`` a real directory, replacing a file or symlink there."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            return
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.mkdir(path, 0o755)


def _place_file(source: str, target: Path) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EMLINK, errno.EPERM, errno.EACCES):
            raise
        shutil.copy2(source, target, follow_symlinks=False)


def apply_layer(layer: Path, merged: Path, modes: dict[Path, int]) -> None:
    """Apply the unpacked ``layer`` on top of ``merged``; ``modes`` collects directory modes."""
    with os.scandir(layer) as scan:
        entries = sorted(scan, key=lambda e: e.name)
    names = {e.name for e in entries}
    if OPAQUE in names:
        with os.scandir(merged) as scan:
            for old in list(scan):
                _remove(merged / old.name)
    for entry in entries:
        if entry.name.startswith(WHITEOUT) and entry.name != OPAQUE:
            hidden = entry.name[len(WHITEOUT) :]
            if hidden and hidden not in (".", ".."):
                _remove(merged / hidden)
    for entry in entries:
        if entry.name.startswith(WHITEOUT):
            continue
        target = merged / entry.name
        if entry.is_dir(follow_symlinks=False):
            _real_dir(target)
            modes[target] = entry.stat(follow_symlinks=False).st_mode & 0o1777
            apply_layer(Path(entry.path), target, modes)
            continue
        _remove(target)
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_file(follow_symlinks=False):
            _place_file(entry.path, target)


def build(layers: list[Path], dest: Path) -> None:
    """Merge ``layers`` (bottom first) into the new directory ``dest``."""
    dest.mkdir(parents=True)
    modes: dict[Path, int] = {}
    for layer in layers:
        apply_layer(layer, dest, modes)
    for name in MOUNT_DIRS:
        _real_dir(dest / name)
        modes.pop(dest / name, None)
    etc = dest / "etc"
    _real_dir(etc)
    resolv = etc / "resolv.conf"
    if not stat.S_ISREG(_mode(resolv)):
        _remove(resolv)
        resolv.write_bytes(b"")
    if not os.path.lexists(etc / "hosts"):
        (etc / "hosts").write_bytes(HOSTS)
    for path in sorted(modes, key=lambda p: len(p.parts), reverse=True):
        if os.geteuid() != 0:
            modes[path] |= 0o700  # keep it removable by the server
        os.chmod(path, modes[path])
    os.chmod(dest, 0o755)


def _mode(path: Path) -> int:
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return 0
