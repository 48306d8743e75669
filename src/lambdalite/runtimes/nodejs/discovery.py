"""Finding a ``node`` binary of a given major version on this host.

Unlike Python, Node.js binaries carry no version in their file name: ``node`` on ``PATH`` may
be any release. A candidate's major version is therefore read from ``node --version`` (once
per binary, cached), while binaries inside version managers' trees (nvm, n, fnm, Volta,
asdf), whose directory names state the version, are only run when the name matches.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["NodeFinder", "default_version_roots", "node_major"]

_NAMES = ("node", "nodejs")
_VERSION_OUTPUT = re.compile(rb"^v(\d+)\.\d+\.\d+")
_VERSION_DIR = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
# Inside a version directory: plain layout first, fnm's "installation" layout second.
_BIN_LAYOUTS = (Path("bin") / "node", Path("installation") / "bin" / "node")
# A cold disk can take a long time to page in a ~100 MB binary the first time.
_PROBE_TIMEOUT = 60.0


def node_major(binary: str | Path) -> int | None:
    """The major version ``binary --version`` reports, or None if it is not a working node."""
    try:
        result = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            timeout=_PROBE_TIMEOUT,
            # No NODE_OPTIONS or other host settings can change what it prints.
            env={"PATH": os.defpath},
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION_OUTPUT.match(result.stdout.strip())
    return int(match[1]) if result.returncode == 0 and match else None


def default_version_roots() -> tuple[Path, ...]:
    """Directories of version-named Node.js installs that common version managers keep."""
    home = Path.home()
    env = os.environ
    roots = [
        Path(env.get("NVM_DIR") or home / ".nvm") / "versions" / "node",
        Path(env.get("N_PREFIX") or "/usr/local") / "n" / "versions" / "node",
        Path(env.get("FNM_DIR") or home / ".local" / "share" / "fnm") / "node-versions",
        home / ".fnm" / "node-versions",
        Path(env.get("VOLTA_HOME") or home / ".volta") / "tools" / "image" / "node",
        Path(env.get("ASDF_DATA_DIR") or home / ".asdf") / "installs" / "nodejs",
    ]
    return tuple(dict.fromkeys(roots))


class NodeFinder:
    """Finds, per major version, the first working ``node`` of that major.

    Order: ``node`` (then ``nodejs``) in each of ``directories``, then the newest matching
    release under each of ``version_roots``. Returned paths are resolved (``realpath``).
    Not thread-safe on its own; the registry serializes discovery.
    """

    def __init__(self, directories: Sequence[Path], version_roots: Sequence[Path]) -> None:
        self._directories = tuple(directories)
        self._version_roots = tuple(version_roots)
        self._majors: dict[str, int | None] = {}

    def find(self, major: int) -> str | None:
        for candidate in self._candidates(major):
            if not (candidate.is_file() and os.access(candidate, os.X_OK)):
                continue
            resolved = os.path.realpath(candidate)
            if resolved not in self._majors:
                self._majors[resolved] = node_major(resolved)
            if self._majors[resolved] == major:
                return resolved
        return None

    def _candidates(self, major: int) -> Iterable[Path]:
        for directory in self._directories:
            for name in _NAMES:
                yield directory / name
        for root in self._version_roots:
            yield from _versioned(root, major)


def _versioned(root: Path, major: int) -> list[Path]:
    """``node`` binaries of ``root``'s ``<major>.*`` installs, newest release first."""
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    ranked: list[tuple[tuple[int, int], Path]] = []
    for entry in entries:
        match = _VERSION_DIR.match(entry.name)
        if match is None or int(match[1]) != major:
            continue
        for layout in _BIN_LAYOUTS:
            ranked.append(((int(match[2]), int(match[3])), entry / layout))
    ranked.sort(key=lambda item: item[0], reverse=True)
    return [path for _, path in ranked]
