"""Reading the files of an image archive or layout, wherever they are.

``docker save`` archives and OCI image archives are tars of files (``manifest.json``,
``index.json``, ``blobs/sha256/<hex>``, layer tars); an OCI image layout is the same files in
a directory. ``open_source`` gives one interface over both: look a member up by its path,
read it as a stream. Archives are read in place (an uncompressed tar is seekable, so no member
is copied); a compressed archive (``docker save | gzip``) is first decompressed into a
temporary file next to the store, since members must be read in whatever order the manifest
names them.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from lambdalite.images.errors import ImageError

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MAX_JSON = 8 * 1024 * 1024  # manifests, indexes and configs are small documents


def clean_member(name: str) -> str:
    """A member path in normal form (``./a//b`` → ``a/b``); ``..`` is refused."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ImageError(f"archive member {name!r} points outside the archive")
    return "/".join(parts)


class Source:
    """The files of one archive or layout, by path relative to its top."""

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def open(self, path: str) -> IO[bytes]:
        """A binary stream of the member; ``ImageError`` when it is missing."""
        raise NotImplementedError

    def size(self, path: str) -> int:
        raise NotImplementedError

    def read_json(self, path: str) -> Any:
        if self.size(path) > MAX_JSON:
            raise ImageError(f"{path} is too large for an image document")
        with self.open(path) as fh:
            data = fh.read()
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ImageError(f"{path} is not valid JSON: {exc}") from exc

    def read_bytes(self, path: str) -> bytes:
        if self.size(path) > MAX_JSON:
            raise ImageError(f"{path} is too large for an image document")
        with self.open(path) as fh:
            return fh.read()


class DirSource(Source):
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, path: str) -> Path:
        full = self.root / clean_member(path)
        # Layout files are plain files inside the layout: a symlink could name anything.
        if full.is_symlink() or not full.is_file():
            raise ImageError(f"{path} is missing from the image layout")
        return full

    def exists(self, path: str) -> bool:
        full = self.root / clean_member(path)
        return full.is_file() and not full.is_symlink()

    def open(self, path: str) -> IO[bytes]:
        return self._path(path).open("rb")

    def size(self, path: str) -> int:
        return self._path(path).stat().st_size


class TarSource(Source):
    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            for member in tar:
                if member.isfile():
                    self.members[clean_member(member.name)] = member
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ImageError(f"not a readable tar archive: {exc}") from exc

    def _member(self, path: str) -> tarfile.TarInfo:
        member = self.members.get(clean_member(path))
        if member is None:
            raise ImageError(f"{path} is missing from the archive")
        return member

    def exists(self, path: str) -> bool:
        return clean_member(path) in self.members

    def open(self, path: str) -> IO[bytes]:
        stream = self.tar.extractfile(self._member(path))
        if stream is None:
            raise ImageError(f"{path} cannot be read from the archive")
        return stream

    def size(self, path: str) -> int:
        return self._member(path).size


@contextmanager
def open_source(path: Path, scratch: Path) -> Iterator[Source]:
    """The files of the archive or layout at ``path``; ``scratch`` holds temporary files."""
    if path.is_dir():
        yield DirSource(path)
        return
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if magic.startswith(_ZSTD_MAGIC):
        raise ImageError("zstd-compressed archives are not supported; decompress it first")
    if not magic.startswith(_GZIP_MAGIC):
        yield from _tar_source(path)
        return
    scratch.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="archive-", suffix=".tar", dir=scratch)
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(path, "rb") as src:
            try:
                shutil.copyfileobj(src, out, 1 << 20)
            except (OSError, EOFError) as exc:
                raise ImageError(f"the compressed archive is damaged: {exc}") from exc
        yield from _tar_source(Path(name))
    finally:
        os.unlink(name)


def _tar_source(path: Path) -> Iterator[Source]:
    try:
        tar = tarfile.open(path, "r:")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, OSError) as exc:
        raise ImageError(
            "not an image archive (expected a tar from `docker save` or an OCI image "
            f"archive): {exc}"
        ) from exc
    with tar:
        yield TarSource(tar)
