"""Building a deployment zip from a directory.

The output is deterministic (sorted names, fixed timestamps, fixed permissions apart from the
execute bit) so deploying an unchanged directory yields the same CodeSha256 and the server can
recognise that nothing changed.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import zipfile
from pathlib import Path

# The earliest time a zip header can hold; any fixed value works, this one is conventional.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_MSDOS_DIRECTORY = 0x10


def zip_directory(path: Path) -> bytes:
    """Zip the contents of ``path`` (not the directory itself), keeping execute bits.

    Symbolic links that resolve inside ``path`` are stored as links (with a relative target);
    links leading elsewhere are replaced by what they point to. Sockets and other special
    files are skipped.
    """
    root = Path(os.path.realpath(path))
    if not root.is_dir():
        raise NotADirectoryError(f"not a directory: {path}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        _add_tree(archive, root, root, "", {str(root)})
    return buffer.getvalue()


def _add_tree(
    archive: zipfile.ZipFile, root: Path, directory: Path, prefix: str, visiting: set[str]
) -> None:
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        name = prefix + entry.name
        full = Path(entry.path)
        if entry.is_symlink():
            resolved = os.path.realpath(full)
            if resolved == str(root) or resolved.startswith(str(root) + os.sep):
                target = os.path.relpath(resolved, os.path.realpath(full.parent))
                _add_link(archive, name, target)
                continue
            if not os.path.exists(resolved):
                raise FileNotFoundError(f"broken symbolic link: {full}")
            full = Path(resolved)
        if full.is_dir():
            real = os.path.realpath(full)
            if real in visiting:
                raise ValueError(f"symbolic link cycle at {entry.path}")
            _add_directory(archive, name)
            _add_tree(archive, root, full, name + "/", visiting | {real})
        elif full.is_file():
            _add_file(archive, name, full)


def _add_directory(archive: zipfile.ZipFile, name: str) -> None:
    info = zipfile.ZipInfo(name + "/", _EPOCH)
    info.create_system = 3
    info.external_attr = ((stat.S_IFDIR | 0o755) << 16) | _MSDOS_DIRECTORY
    archive.writestr(info, b"")


def _add_link(archive: zipfile.ZipFile, name: str, target: str) -> None:
    info = zipfile.ZipInfo(name, _EPOCH)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive.writestr(info, target.encode("utf-8"))


def _add_file(archive: zipfile.ZipFile, name: str, full: Path) -> None:
    info = zipfile.ZipInfo(name, _EPOCH)
    info.create_system = 3
    status = full.stat()
    executable = status.st_mode & 0o111
    info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    # Known up front so the writer picks zip64 headers only for files that need them.
    info.file_size = status.st_size
    with full.open("rb") as source, archive.open(info, "w") as target:
        shutil.copyfileobj(source, target, 1 << 20)
