"""Live code directories: noticing that files under a directory changed, cheaply.

Hot-reload functions run straight from a directory on the host instead of an extracted
package, so something must notice edits. ``DirectoryWatcher`` uses Linux inotify (through
ctypes; the standard library has no binding): the kernel queues an event the moment a write,
rename or delete happens, so asking "did anything change?" is one non-blocking ``read`` that
usually finds nothing. That makes it cheap enough for every invocation, and exact: an edit that
finished before the invocation was sent is always seen. inotify watches one directory, not a
tree, so every subdirectory gets a watch of its own (new ones as they appear).

Where inotify is missing, or a tree has more directories than a watcher will take on, the tree
is polled instead: a signature of every file's path, size and modification time, taken by
``poll`` (meant for a background thread) at a short interval.

Bytecode caches (``__pycache__``, ``*.pyc``) and version-control directories are ignored: the
runtime itself writes the former, and neither is code the function runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

IGNORED_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn"})
MAX_WATCHES_PER_TREE = 4096

_IN_MODIFY, _IN_ATTRIB, _IN_CLOSE_WRITE = 0x2, 0x4, 0x8
_IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x40, 0x80, 0x100, 0x200
_IN_DELETE_SELF, _IN_MOVE_SELF = 0x400, 0x800
_IN_Q_OVERFLOW, _IN_IGNORED, _IN_ISDIR = 0x4000, 0x8000, 0x40000000
_IN_ONLYDIR, _IN_DONT_FOLLOW = 0x01000000, 0x02000000
_MASK = (
    _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE
    | _IN_DELETE | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_ONLYDIR | _IN_DONT_FOLLOW
)  # fmt: skip
_IN_NONBLOCK, _IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
_EVENT = struct.Struct("iIII")


@dataclass(frozen=True)
class Listing:
    """What a directory held at one moment: a digest of its names, sizes and times."""

    sha256: bytes
    total_bytes: int
    files: int


def _ignored(name: str) -> bool:
    return name in IGNORED_DIRS or name.endswith(".pyc")


def entries(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` (symbolic links not followed, ignored names left out) by
    relative path: its size and modification time in nanoseconds."""
    found: dict[str, tuple[int, int]] = {}
    for directory, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _ignored(d))
        for name in sorted(names):
            if _ignored(name):
                continue
            path = os.path.join(directory, name)
            try:
                status = os.lstat(path)
            except OSError:
                continue  # vanished while we looked
            found[os.path.relpath(path, root)] = (status.st_size, status.st_mtime_ns)
    return found


def listing(root: Path) -> Listing:
    """Digest of ``entries``: a change of any name, size or time changes it."""
    digest = hashlib.sha256()
    seen = entries(root)
    for relative, (size, mtime) in sorted(seen.items()):
        digest.update(f"{relative}\0{size}\0{mtime}\n".encode())
    return Listing(digest.digest(), sum(size for size, _ in seen.values()), len(seen))


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
        return libc
    except (OSError, AttributeError):
        return None


@dataclass
class _Tree:
    root: Path
    polled: bool = False
    signature: bytes = b""
    watches: set[int] = field(default_factory=set)
    lost: bool = False  # the root itself went away; watch it again once it is back


class DirectoryWatcher:
    """Watches directory trees and reports which of them changed since the last question."""

    def __init__(self, *, use_inotify: bool = True) -> None:
        self._libc = _load_libc() if use_inotify else None
        self._fd = -1
        if self._libc is not None:
            fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
            self._fd = fd if fd >= 0 else -1
        self._trees: dict[Path, _Tree] = {}
        self._wds: dict[int, tuple[Path, str]] = {}  # watch → (tree root, directory path)

    @property
    def fileno(self) -> int:
        """The inotify descriptor (readable when events wait), or -1 when only polling."""
        return self._fd

    @property
    def polling(self) -> bool:
        """Whether any tree needs ``poll`` to be called now and then."""
        return any(tree.polled for tree in self._trees.values())

    def watch(self, root: Path) -> None:
        """Start watching ``root`` (a resolved directory); a no-op if already watched."""
        if root in self._trees:
            return
        tree = self._trees[root] = _Tree(root)
        if self._fd < 0 or not self._watch_tree(tree, str(root)):
            self._poll_instead(tree)

    def changed(self) -> set[Path]:
        """Roots that changed since the last call (inotify trees only; one ``read`` when
        nothing happened)."""
        found: set[Path] = set()
        for tree in self._trees.values():
            if tree.lost and not tree.polled and os.path.isdir(tree.root):
                tree.lost = False
                found.add(tree.root)  # replaced as a whole: what it holds now is new
                if not self._watch_tree(tree, str(tree.root)):
                    self._poll_instead(tree)
        if self._fd < 0:
            return found
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return found
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            if not data:
                return found
            found |= self._parse(data)

    def poll(self) -> set[Path]:
        """Roots watched by polling whose files changed since the last poll (walks them:
        call it off the event loop)."""
        found: set[Path] = set()
        for tree in list(self._trees.values()):
            if not tree.polled:
                continue
            signature = _signature(tree.root)
            if signature != tree.signature:
                tree.signature = signature
                found.add(tree.root)
        return found

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- internals ------------------------------------------------------------------------
    def _poll_instead(self, tree: _Tree) -> None:
        self._drop_watches(tree)
        tree.polled = True
        tree.signature = _signature(tree.root)

    def _watch_tree(self, tree: _Tree, top: str) -> bool:
        """Watch ``top`` and every directory below it; False when the tree is too big or
        the kernel refuses (the caller then polls the tree)."""
        for directory, dirs, _files in os.walk(top):
            dirs[:] = [d for d in dirs if not _ignored(d)]
            if len(tree.watches) >= MAX_WATCHES_PER_TREE or not self._add(tree, directory):
                return False
        return True

    def _add(self, tree: _Tree, directory: str) -> bool:
        assert self._libc is not None
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(directory), _MASK)
        if wd < 0:
            # The directory vanished meanwhile (fine), or no watches are left (poll instead).
            return ctypes.get_errno() in (errno.ENOENT, errno.ENOTDIR)
        tree.watches.add(wd)
        self._wds[wd] = (tree.root, directory)
        return True

    def _drop_watches(self, tree: _Tree) -> None:
        for wd in tree.watches:
            self._wds.pop(wd, None)
            if self._libc is not None and self._fd >= 0:
                with contextlib.suppress(OSError):
                    self._libc.inotify_rm_watch(self._fd, wd)
        tree.watches.clear()

    def _parse(self, data: bytes) -> set[Path]:
        found: set[Path] = set()
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
            offset += _EVENT.size + length
            name = raw.split(b"\0", 1)[0].decode(errors="replace")
            if mask & _IN_Q_OVERFLOW:
                found |= set(self._trees)  # events were lost: assume everything changed
                continue
            where = self._wds.get(wd)
            if where is None:
                continue
            root, directory = where
            tree = self._trees[root]
            if mask & _IN_IGNORED:
                self._wds.pop(wd, None)
                tree.watches.discard(wd)
                continue
            if mask & (_IN_DELETE_SELF | _IN_MOVE_SELF):
                if directory == str(root):
                    tree.lost = True
                    found.add(root)
                continue
            if name and _ignored(name):
                continue
            found.add(root)
            grown = mask & _IN_ISDIR and mask & (_IN_CREATE | _IN_MOVED_TO) and name
            if grown and not self._watch_tree(tree, os.path.join(directory, name)):
                self._poll_instead(tree)
        return found


def _signature(root: Path) -> bytes:
    try:
        return listing(root).sha256
    except OSError:
        return b""
