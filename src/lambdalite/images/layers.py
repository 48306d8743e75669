"""Unpacking one layer tar, safely, into a directory of its own.

A layer is unpacked once per diff-id and shared by every image that has it. What is written
is the layer as it is, whiteout markers included (``.wh.<name>`` and ``.wh..wh..opq`` stay as
empty files): applying them needs the layers below, which is ``rootfs.merge``'s job.

The tar comes from whoever built the image, so nothing in it is trusted:

* member paths are normalized and ``..`` is refused, so nothing lands outside the layer;
* no member is written through a symlink: every parent of a member must be a real directory
  of this layer (a link named ``etc`` followed by ``etc/passwd`` is refused, not followed);
* hard links must name an earlier member of the same layer, checked the same way;
* setuid, setgid and ownership are dropped (files belong to the server, the sandbox mounts
  them ``nosuid``); device nodes and FIFOs are skipped, a sandbox has its own ``/dev``;
* bytes are counted against the image's size budget as they are written;
* the digest of the blob (when the manifest names one) and of the uncompressed tar (the
  diff-id) are computed while reading and compared at the end, after the whole stream has been
  read; a truncated or corrupted layer fails there or earlier as an unreadable tar.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import shutil
import stat
import tarfile
import zlib
from pathlib import Path
from typing import IO, Protocol

from lambdalite.images.errors import ImageError

_CHUNK = 1 << 20
_MODE_BITS = 0o1777  # permission bits and sticky; never setuid or setgid


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Budget:
    """Uncompressed bytes an image may still take (AWS: 10 GB per image)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, amount: int, what: str) -> None:
        self.used += amount
        if self.used > self.limit:
            raise ImageError(
                f"{what}: the image is larger than the limit of {self.limit} bytes unpacked"
            )


class _Hashing:
    """A read-only stream that hashes (and counts) what passes through it."""

    def __init__(self, raw: _Readable) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.hash.update(data)
        self.count += len(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def unpack(
    blob: IO[bytes],
    dest: Path,
    *,
    blob_digest: str | None,
    diff_id: str,
    budget: Budget,
) -> int:
    """Unpack the layer stream ``blob`` into the new directory ``dest``; its size in bytes."""
    what = f"layer {blob_digest or diff_id}"
    outer = _Hashing(blob)
    head = outer.read(2)
    compressed = head == b"\x1f\x8b"
    plain: _Readable
    if compressed:
        plain = gzip.GzipFile(fileobj=_Prefixed(outer, head), mode="rb")
    else:
        plain = _Prefixed(outer, head)
    inner = _Hashing(plain)
    dest.mkdir(parents=True)
    dirs: list[tuple[Path, int]] = []
    size = 0
    try:
        with tarfile.open(fileobj=inner, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                size += _extract(tar, member, dest, dirs, budget, what)
        inner.drain()
        outer.drain()
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ImageError(f"{what} is damaged (not a complete tar archive): {exc}") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise ImageError(f"{what} cannot be unpacked: {exc}") from exc
    if blob_digest is not None and outer.digest != blob_digest:
        raise ImageError(f"{what}: content does not match its digest (got {outer.digest})")
    if inner.digest != diff_id:
        raise ImageError(
            f"{what}: uncompressed content does not match diff-id {diff_id} (got {inner.digest})"
        )
    for path, mode in reversed(dirs):
        os.chmod(path, mode)
    return size


class _Prefixed:
    """``outer`` with the bytes already read from it put back in front."""

    def __init__(self, outer: _Hashing, head: bytes) -> None:
        self.outer = outer
        self.head = head

    def read(self, size: int = -1) -> bytes:
        if self.head:
            data = self.head if size < 0 else self.head[:size]
            self.head = self.head[len(data) :]
            return data
        return self.outer.read(size)

    def seek(self, offset: int, /) -> int:
        raise OSError(errno.ESPIPE, "a layer stream is read once, forwards")


def _real_parent(dest: Path, parts: list[str], what: str, name: str) -> Path:
    """The directory that holds ``parts[-1]``, every step a real directory of the layer."""
    current = dest
    for part in parts[:-1]:
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o755)
            continue
        if not stat.S_ISDIR(info.st_mode):
            raise ImageError(f"{what}: {name!r} lies under a symlink or file, refused")
    return current


def _clean(name: str, what: str) -> list[str]:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ImageError(f"{what}: member {name!r} points outside the image, refused")
    return parts


def _remove(path: Path) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _extract(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    dest: Path,
    dirs: list[tuple[Path, int]],
    budget: Budget,
    what: str,
) -> int:
    parts = _clean(member.name, what)
    if not parts:
        return 0
    parent = _real_parent(dest, parts, what, member.name)
    target = parent / parts[-1]
    mode = member.mode & _MODE_BITS
    if member.isdir():
        try:
            info = os.lstat(target)
            if not stat.S_ISDIR(info.st_mode):
                _remove(target)
                os.mkdir(target, 0o755)
        except FileNotFoundError:
            os.mkdir(target, 0o755)
        # Applied at the end: a read-only directory must still take its entries.
        dirs.append((target, mode | 0o700 if os.geteuid() != 0 else mode))
        return 0
    if not (member.isfile() or member.issym() or member.islnk()):
        return 0  # devices and FIFOs: a sandbox has its own /dev
    _remove(target)
    if member.issym():
        os.symlink(member.linkname, target)
        return 0
    if member.islnk():
        link_parts = _clean(member.linkname, what)
        if not link_parts:
            raise ImageError(f"{what}: hard link {member.name!r} has no target")
        source = _real_parent(dest, link_parts, what, member.linkname) / link_parts[-1]
        try:
            os.link(source, target, follow_symlinks=False)
        except FileNotFoundError as exc:
            raise ImageError(
                f"{what}: hard link {member.name!r} names {member.linkname!r}, which the layer "
                "does not hold"
            ) from exc
        return 0
    budget.take(member.size, what)
    stream = tar.extractfile(member)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        if stream is not None:
            while chunk := stream.read(_CHUNK):
                out.write(chunk)
        os.fchmod(out.fileno(), mode)
    return member.size
