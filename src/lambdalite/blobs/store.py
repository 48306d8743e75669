"""Content-addressed storage of code packages.

A package is stored once under its SHA-256, whatever number of functions, versions or layers
use it, and is extracted at most once into a read-only directory that every execution
environment of that code can share. Both steps publish by ``rename``, so a reader sees either
nothing or a complete file or tree, even across processes and crashes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from lambdalite.blobs.archive import (
    MAX_UNZIPPED,
    MAX_ZIPPED,
    extract_archive,
    inspect_archive,
    open_archive,
    plan_archive,
)
from lambdalite.core.errors import RequestEntityTooLargeException

_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class CodeInfo:
    sha256_hex: str
    code_sha256_b64: str  # AWS CodeSha256: base64 of the raw digest
    size: int  # zipped bytes (AWS CodeSize)
    unzipped_size: int


class CodeStore:
    """Zips under ``root/zips/<hex[:2]>/<hex>.zip``, extracted trees under ``root/code/<hex>``."""

    def __init__(
        self,
        root: Path,
        *,
        max_zipped: int = MAX_ZIPPED,
        max_unzipped: int = MAX_UNZIPPED,
    ) -> None:
        self.root = Path(root)
        self.max_zipped = max_zipped
        self.max_unzipped = max_unzipped
        self._zips = self.root / "zips"
        self._code = self.root / "code"
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def put_zip(self, data: bytes, *, max_unzipped: int | None = None) -> CodeInfo:
        """Validate and store a package; storing the same bytes again is a no-op.

        ``max_unzipped`` tightens the unzipped limit for this package (a function's budget
        shrinks by the size of its layers); it should not exceed the store's own limit,
        which extraction enforces.
        """
        if len(data) > self.max_zipped:
            raise RequestEntityTooLargeException(
                f"Zipped size must be smaller than {self.max_zipped} bytes"
            )
        limit = self.max_unzipped if max_unzipped is None else max_unzipped
        plan = inspect_archive(io.BytesIO(data), limit)
        digest = hashlib.sha256(data).digest()
        info = CodeInfo(
            sha256_hex=digest.hex(),
            code_sha256_b64=base64.b64encode(digest).decode("ascii"),
            size=len(data),
            unzipped_size=plan.declared_size,
        )
        path = self.zip_path(info.sha256_hex)
        if not path.is_file():
            _write_atomically(path, data)
        return info

    def info(self, sha256_hex: str) -> CodeInfo:
        """Describe a stored package (its sizes come from the already-validated archive)."""
        path = self.zip_path(sha256_hex)
        with open_archive(path) as archive:
            plan = plan_archive(archive, self.max_unzipped)
        digest = bytes.fromhex(sha256_hex)
        return CodeInfo(
            sha256_hex=sha256_hex,
            code_sha256_b64=base64.b64encode(digest).decode("ascii"),
            size=path.stat().st_size,
            unzipped_size=plan.declared_size,
        )

    def zip_path(self, sha256_hex: str) -> Path:
        _check_hex(sha256_hex)
        return self._zips / sha256_hex[:2] / f"{sha256_hex}.zip"

    def exists(self, sha256_hex: str) -> bool:
        return self.zip_path(sha256_hex).is_file()

    def read_zip(self, sha256_hex: str) -> bytes:
        return self.zip_path(sha256_hex).read_bytes()

    def unpacked(self, sha256_hex: str) -> Path:
        """The extracted, read-only tree of a stored package, extracting it on first use."""
        final = self._code / sha256_hex
        source = self.zip_path(sha256_hex)
        if final.is_dir():
            return final
        with self._lock_for(sha256_hex):
            if final.is_dir():
                return final
            if not source.is_file():
                raise FileNotFoundError(f"no code package {sha256_hex}")
            self._code.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{sha256_hex}.", dir=self._code))
            try:
                extract_archive(source, staging, self.max_unzipped)
                os.rename(staging, final)
            except OSError:
                # Another process published the same tree first; theirs is as good as ours.
                if not final.is_dir():
                    _remove_tree(staging)
                    raise
                _remove_tree(staging)
            except BaseException:
                _remove_tree(staging)
                raise
        return final

    def delete(self, sha256_hex: str) -> bool:
        """Remove a package and its extracted tree; False if neither existed.

        The store does not count references: callers delete only code no function, version
        or layer still uses.
        """
        removed = False
        path = self.zip_path(sha256_hex)
        try:
            path.unlink()
            removed = True
        except FileNotFoundError:
            pass
        final = self._code / sha256_hex
        with self._lock_for(sha256_hex):
            if final.is_dir():
                # Move it aside first so nobody finds a half-deleted tree under the real name.
                doomed = Path(tempfile.mkdtemp(prefix=f".{sha256_hex}.", dir=self._code))
                os.rename(final, doomed / "tree")
                _remove_tree(doomed)
                removed = True
        return removed

    def _lock_for(self, sha256_hex: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(sha256_hex, threading.Lock())


def _check_hex(sha256_hex: str) -> None:
    # The hash becomes a path component: anything but 64 lowercase hex digits is refused.
    if not _HEX.fullmatch(sha256_hex):
        raise ValueError(f"not a SHA-256 hex digest: {sha256_hex!r}")


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _remove_tree(path: Path) -> None:
    """Delete a tree made read-only by extraction (directories need write access first)."""
    if not path.exists():
        return
    for directory, _subdirs, _files in os.walk(path):
        os.chmod(directory, 0o755)
    shutil.rmtree(path)
