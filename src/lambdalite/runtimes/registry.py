"""Runtime registry: which Lambda runtime ids exist, which we can run, and with what.

A function's ``Runtime`` (e.g. ``python3.12``) must become a concrete command line for the
sandbox. The registry maps each supported id to an interpreter installed on this host and the
bootstrap script of its family. Discovery only inspects the file system (it never executes a
candidate) and runs once per registry, because environments start on the invoke hot path.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lambdalite.runtimes.python import launcher_path

__all__ = [
    "KNOWN_RUNTIMES",
    "SUPPORTED_RUNTIMES",
    "RuntimeCommand",
    "RuntimeRegistry",
]

# Values of the ``Runtime`` enum in botocore's Lambda model (2015-03-31), in model order.
# Kept literal so validation messages need no model load; a unit test checks it against
# the pinned botocore so drift is caught.
KNOWN_RUNTIMES: tuple[str, ...] = (
    "nodejs", "nodejs4.3", "nodejs6.10", "nodejs8.10", "nodejs10.x", "nodejs12.x",
    "nodejs14.x", "nodejs16.x", "java8", "java8.al2", "java11", "python2.7", "python3.6",
    "python3.7", "python3.8", "python3.9", "dotnetcore1.0", "dotnetcore2.0", "dotnetcore2.1",
    "dotnetcore3.1", "dotnet6", "dotnet8", "nodejs4.3-edge", "go1.x", "ruby2.5", "ruby2.7",
    "provided", "provided.al2", "nodejs18.x", "python3.10", "java17", "ruby3.2", "ruby3.3",
    "ruby3.4", "python3.11", "nodejs20.x", "provided.al2023", "python3.12", "java21",
    "python3.13", "nodejs22.x", "nodejs24.x", "python3.14", "java25", "dotnet10", "ruby4.0",
)  # fmt: skip

_PYTHON_VERSIONS = ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14")
SUPPORTED_RUNTIMES: tuple[str, ...] = tuple(f"python{v}" for v in _PYTHON_VERSIONS)

_SYSTEM_DIRS = ("/usr/local/bin", "/usr/bin")
_PYENV_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(.*)$")


@dataclass(frozen=True)
class RuntimeCommand:
    """How to start the runtime client of one runtime id on this host.

    ``argv`` is complete: run it with the working directory set to the code directory and
    the Lambda environment (``AWS_LAMBDA_RUNTIME_API``, ``_HANDLER``, ...), adding
    ``AWS_EXECUTION_ENV=execution_env``.
    """

    runtime_id: str
    family: str
    version: str
    interpreter: str
    argv: list[str]
    execution_env: str


class RuntimeRegistry:
    """Resolves Lambda runtime ids to interpreters installed on this host.

    ``overrides`` is the operator's ``python3.12=/path/to/python,...`` setting and wins over
    discovery. Discovery then looks, per version ``X.Y``, for ``pythonX.Y`` in each absolute
    entry of ``search_path`` (default: ``PATH`` at first use; pyenv ``shims`` directories are
    skipped because they re-dispatch on the caller's pyenv selection), then in
    ``system_dirs``, then in ``<root>/versions/*/bin`` of each pyenv root (default:
    ``$PYENV_ROOT`` and ``~/.pyenv``), newest patch release first. Paths are returned
    resolved (``realpath``) so a virtualenv's link runs its base interpreter, not
    lambdalite's environment.
    """

    def __init__(
        self,
        overrides: str = "",
        *,
        search_path: str | None = None,
        system_dirs: Sequence[str] = _SYSTEM_DIRS,
        pyenv_roots: Sequence[str | Path] | None = None,
    ) -> None:
        self._overrides = _parse_overrides(overrides)
        self._search_path = search_path
        self._system_dirs = tuple(system_dirs)
        self._pyenv_roots = None if pyenv_roots is None else tuple(map(Path, pyenv_roots))
        self._lock = threading.Lock()
        self._found: dict[str, str] | None = None

    @staticmethod
    def known_runtimes() -> tuple[str, ...]:
        """Every runtime id AWS Lambda accepts, in the model's order (for messages)."""
        return KNOWN_RUNTIMES

    @staticmethod
    def supported_runtimes() -> tuple[str, ...]:
        """Runtime ids of the families this platform can run, installed or not."""
        return SUPPORTED_RUNTIMES

    def is_known(self, runtime_id: str) -> bool:
        """Whether ``runtime_id`` is a Lambda runtime id at all."""
        return runtime_id in KNOWN_RUNTIMES

    def is_supported(self, runtime_id: str) -> bool:
        """Whether ``runtime_id`` belongs to a runtime family this platform can run."""
        return runtime_id in SUPPORTED_RUNTIMES

    def available(self) -> dict[str, str]:
        """Supported runtime ids that have an interpreter here, mapped to its path."""
        return dict(self._discovered())

    def resolve(self, runtime_id: str) -> RuntimeCommand | None:
        """The command that starts ``runtime_id``, or None when it cannot run here."""
        interpreter = self._discovered().get(runtime_id)
        if interpreter is None:
            return None
        version = runtime_id.removeprefix("python")
        return RuntimeCommand(
            runtime_id=runtime_id,
            family="python",
            version=version,
            interpreter=interpreter,
            argv=[interpreter, str(launcher_path())],
            execution_env=f"AWS_Lambda_{runtime_id}",
        )

    def _discovered(self) -> dict[str, str]:
        with self._lock:
            if self._found is None:
                self._found = self._discover()
            return self._found

    def _discover(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for runtime_id in SUPPORTED_RUNTIMES:
            path = self._overrides.get(runtime_id)
            if path is None:
                version = runtime_id.removeprefix("python")
                path = _first_executable(self._candidates(version))
            if path is not None:
                found[runtime_id] = path
        return found

    def _candidates(self, version: str) -> Iterable[Path]:
        name = f"python{version}"
        search_path = self._search_path
        if search_path is None:
            search_path = os.environ.get("PATH", os.defpath)
        for entry in search_path.split(os.pathsep):
            # Relative entries would depend on the server's working directory.
            if os.path.isabs(entry) and "shims" not in Path(entry).parts:
                yield Path(entry) / name
        for directory in self._system_dirs:
            yield Path(directory) / name
        for root in self._roots():
            yield from _pyenv_interpreters(root, version)

    def _roots(self) -> tuple[Path, ...]:
        if self._pyenv_roots is not None:
            return self._pyenv_roots
        roots = [Path(os.environ["PYENV_ROOT"])] if os.environ.get("PYENV_ROOT") else []
        roots.append(Path.home() / ".pyenv")
        return tuple(dict.fromkeys(roots))


def _parse_overrides(text: str) -> dict[str, str]:
    """Parse ``python3.12=/usr/bin/python3.12,...``; bad entries fail loudly at start-up."""
    result: dict[str, str] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        runtime_id, sep, path = (part.strip() for part in entry.partition("="))
        if not sep or not runtime_id or not path:
            raise ValueError(f"runtime override {entry!r} is not of the form <runtime>=<path>")
        if runtime_id not in SUPPORTED_RUNTIMES:
            raise ValueError(
                f"runtime override {entry!r}: {runtime_id!r} is not one of "
                f"{', '.join(SUPPORTED_RUNTIMES)}"
            )
        resolved = _first_executable([Path(path).expanduser()])
        if resolved is None:
            raise ValueError(f"runtime override {entry!r}: {path!r} is not an executable file")
        result[runtime_id] = resolved
    return result


def _first_executable(candidates: Iterable[Path]) -> str | None:
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return os.path.realpath(candidate)
    return None


def _pyenv_interpreters(root: Path, version: str) -> list[Path]:
    """``python3.Y`` binaries of a pyenv root's X.Y.* installs, newest release first."""
    major, minor = (int(part) for part in version.split("."))
    ranked: list[tuple[tuple[int, int, int], Path]] = []
    try:
        entries = list((root / "versions").iterdir())
    except OSError:
        return []
    for entry in entries:
        match = _PYENV_VERSION.match(entry.name)
        if match is None or (int(match[1]), int(match[2])) != (major, minor):
            continue
        # Plain releases ("3.12.4") rank above variants such as "3.12.4t" or "3.12-dev".
        rank = (int(match[3] or 0), 0 if match[4] else 1, -len(match[4]))
        ranked.append((rank, entry / "bin" / f"python{version}"))
    ranked.sort(key=lambda item: item[0], reverse=True)
    return [path for _, path in ranked]
