"""Reading untrusted zip archives safely.

A deployment package comes from whoever holds API credentials, so its entries are checked
before anything touches the disk: every path must stay inside the target directory (no absolute
names, no ``..``), symbolic links must resolve inside the package even when chained through
other links, no entry may be written through a link or a file, and the total size is bounded
both by what the archive declares and by the bytes actually produced while inflating.

The same checks run when a package is uploaded (so bad packages are refused at the API, the
way AWS does) and again when it is extracted, so extraction never trusts an earlier step.
"""

from __future__ import annotations

import lzma
import os
import stat
import struct
import zipfile
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from lambdalite.core.errors import InvalidParameterValueException

MAX_ZIPPED = 52_428_800
MAX_UNZIPPED = 262_144_000

CANNOT_UNZIP = "Could not unzip uploaded file. Please check your file, then try to upload again."

_CHUNK = 1 << 20
_MAX_LINK_TARGET = 4096
_MAX_LINK_HOPS = 40
# What a damaged or unsupported archive raises while being read from memory.
_DECODE_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    RuntimeError,  # encrypted entries; NotImplementedError (unknown method) is a subclass
    struct.error,
    ValueError,
    OSError,  # bz2 reports bad streams this way
)

EntryKind = Literal["file", "dir", "link"]


@dataclass(frozen=True)
class Entry:
    path: str  # normalized, relative, "/"-separated, no trailing slash
    kind: EntryKind
    info: zipfile.ZipInfo
    executable: bool = False
    target: str = ""  # link target, as stored


@dataclass(frozen=True)
class Plan:
    """The entries an archive will produce, already checked, in archive order."""

    entries: tuple[Entry, ...]
    declared_size: int

    def files(self) -> Iterator[Entry]:
        return (e for e in self.entries if e.kind == "file")


def unzip_error(detail: str = "") -> InvalidParameterValueException:
    if not detail:
        return InvalidParameterValueException(CANNOT_UNZIP)
    return InvalidParameterValueException(f"Could not unzip uploaded file. {detail}")


def too_big(max_unzipped: int) -> InvalidParameterValueException:
    return InvalidParameterValueException(
        f"Unzipped size must be smaller than {max_unzipped} bytes"
    )


def open_archive(source: IO[bytes] | Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except _DECODE_ERRORS:
        raise unzip_error() from None


def plan_archive(archive: zipfile.ZipFile, max_unzipped: int) -> Plan:
    """Check names, links and declared sizes; raise InvalidParameterValueException if unsafe."""
    by_path: dict[str, Entry] = {}
    for info in archive.infolist():
        entry = _entry(archive, info)
        if entry is None:
            continue
        previous = by_path.get(entry.path)
        if previous is not None and (previous.kind != entry.kind):
            raise unzip_error(f"Entry {info.filename!r} conflicts with another entry.")
        by_path[entry.path] = entry
    _check_ancestors(by_path)
    links = {path: e.target for path, e in by_path.items() if e.kind == "link"}
    for path in links:
        _check_link(links, path)
    entries = tuple(by_path.values())
    declared = sum(e.info.file_size for e in entries if e.kind == "file")
    if declared > max_unzipped:
        raise too_big(max_unzipped)
    return Plan(entries, declared)


def measure_archive(archive: zipfile.ZipFile, plan: Plan, max_unzipped: int) -> int:
    """Inflate every file without storing it: verifies checksums, returns the real size."""
    total = 0
    for entry in plan.files():
        with archive.open(entry.info) as source:
            while chunk := source.read(_CHUNK):
                total += len(chunk)
                if total > max_unzipped:
                    raise too_big(max_unzipped)
    return total


def inspect_archive(data: IO[bytes], max_unzipped: int) -> Plan:
    """Open, plan and fully read an archive held in memory; any damage is a user error."""
    try:
        archive = open_archive(data)
        with archive:
            plan = plan_archive(archive, max_unzipped)
            measure_archive(archive, plan, max_unzipped)
    except _DECODE_ERRORS:
        raise unzip_error() from None
    return plan


def extract_archive(source: Path, dest: Path, max_unzipped: int) -> int:
    """Write the archive at ``source`` into the empty directory ``dest``; return bytes written.

    Files and directories are created first and links last, so no write can pass through a
    link; everything ends read-only (files keep their execute bits).
    """
    with open_archive(source) as archive:
        plan = plan_archive(archive, max_unzipped)
        directories = {dest}
        total = 0
        for entry in plan.entries:
            target = dest / entry.path
            if entry.kind == "dir":
                target.mkdir(parents=True, exist_ok=True)
                directories.add(target)
            elif entry.kind == "file":
                target.parent.mkdir(parents=True, exist_ok=True)
                total += _write_file(archive, entry, target, total, max_unzipped)
            directories.update(p for p in target.parents if p != dest and dest in p.parents)
        root = os.path.realpath(dest)
        for entry in plan.entries:
            if entry.kind == "link":
                link = dest / entry.path
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(entry.target, link)
                resolved = os.path.realpath(link)
                if resolved != root and not resolved.startswith(root + os.sep):
                    raise unzip_error(f"Entry {entry.info.filename!r} points outside the package.")
    for directory in sorted(directories, key=lambda p: len(p.parts), reverse=True):
        directory.chmod(0o555)
    return total


def _write_file(
    archive: zipfile.ZipFile, entry: Entry, target: Path, so_far: int, max_unzipped: int
) -> int:
    """Inflate one entry into ``target``, counting real bytes against both limits."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(target, flags, 0o600)
    written = 0
    try:
        with archive.open(entry.info) as source:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                if written > entry.info.file_size:
                    raise unzip_error()
                if so_far + written > max_unzipped:
                    raise too_big(max_unzipped)
                _write_all(fd, chunk)
        os.fchmod(fd, 0o555 if entry.executable else 0o444)
    finally:
        os.close(fd)
    return written


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Entry | None:
    path = _normalize(info.filename)
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        if not path:
            raise unzip_error(f"Entry {info.filename!r} is not a valid symbolic link.")
        return Entry(path, "link", info, target=_link_target(archive, info))
    if info.is_dir() or stat.S_ISDIR(mode):
        return Entry(path, "dir", info) if path else None
    if not path:
        raise unzip_error(f"Entry {info.filename!r} has no file name.")
    return Entry(path, "file", info, executable=bool(mode & 0o111))


def _normalize(name: str) -> str:
    if "\x00" in name:
        raise unzip_error(f"Entry {name!r} has an invalid name.")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        raise unzip_error(f"Entry {name!r} has an absolute path.")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise unzip_error(f"Entry {name!r} would be extracted outside the package.")
    return "/".join(parts)


def _link_target(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    if info.file_size > _MAX_LINK_TARGET:
        raise unzip_error(f"Entry {info.filename!r} is not a valid symbolic link.")
    with archive.open(info) as source:
        raw = source.read(_MAX_LINK_TARGET + 1)
    try:
        target = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise unzip_error(f"Entry {info.filename!r} is not a valid symbolic link.") from None
    if not target or "\x00" in target or len(raw) > _MAX_LINK_TARGET:
        raise unzip_error(f"Entry {info.filename!r} is not a valid symbolic link.")
    if target.startswith("/"):
        raise unzip_error(f"Entry {info.filename!r} points outside the package.")
    return target


def _check_ancestors(by_path: dict[str, Entry]) -> None:
    """No entry may sit below a file or a link: writing it would go through them."""
    leaves = {path for path, e in by_path.items() if e.kind != "dir"}
    for path, entry in by_path.items():
        parts = path.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in leaves:
                raise unzip_error(f"Entry {entry.info.filename!r} conflicts with another entry.")


def _check_link(links: dict[str, str], path: str) -> None:
    """Resolve a link through the package's other links, refusing any way out of the root."""
    name = path
    pending = deque(path.split("/")[:-1] + links[path].split("/"))
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.popleft()
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                raise unzip_error(f"Entry {name!r} points outside the package.")
            resolved.pop()
            continue
        resolved.append(part)
        target = links.get("/".join(resolved))
        if target is None:
            continue
        hops += 1
        if hops > _MAX_LINK_HOPS:
            raise unzip_error(f"Entry {name!r} is part of a symbolic link loop.")
        resolved.pop()
        if target.startswith("/"):
            raise unzip_error(f"Entry {name!r} points outside the package.")
        pending.extendleft(reversed(target.split("/")))
