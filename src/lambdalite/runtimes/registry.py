"""Runtime registry: which Lambda runtime ids exist, which we can run, and with what.

A function's ``Runtime`` (e.g. ``python3.12``, ``nodejs20.x``) must become a concrete command
line for the sandbox. The registry maps each supported id to an interpreter installed on this
host and the runtime client of its family. Discovery runs once per family and registry,
because environments start on the invoke hot path: Python interpreters are found by file
name alone, Node.js binaries by running ``node --version`` once each (their names carry no
version).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lambdalite.runtimes.nodejs import NodeFinder
from lambdalite.runtimes.nodejs import bootstrap_path as node_bootstrap_path
from lambdalite.runtimes.nodejs.discovery import default_version_roots
from lambdalite.runtimes.python import launcher_path

__all__ = [
    "KNOWN_RUNTIMES",
    "NODE_RUNTIMES",
    "PROVIDED_RUNTIMES",
    "PYTHON_RUNTIMES",
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
PYTHON_RUNTIMES: tuple[str, ...] = tuple(f"python{v}" for v in _PYTHON_VERSIONS)
NODE_RUNTIMES: tuple[str, ...] = ("nodejs18.x", "nodejs20.x", "nodejs22.x")
# OS-only runtimes: the function brings an executable ``bootstrap`` (in its code or a layer)
# that talks to the Runtime API itself; nothing needs to be installed here.
PROVIDED_RUNTIMES: tuple[str, ...] = ("provided", "provided.al2", "provided.al2023")
SUPPORTED_RUNTIMES: tuple[str, ...] = PYTHON_RUNTIMES + NODE_RUNTIMES + PROVIDED_RUNTIMES
# AWS starts Node.js with large HTTP headers allowed (and ``--expose-gc``, which costs ~8 ms of
# every cold start here: the runtime client provides ``global.gc`` lazily instead).
_NODE_FLAGS = ("--max-http-header-size=81920",)

_SYSTEM_DIRS = ("/usr/local/bin", "/usr/bin")
_PYENV_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(.*)$")


@dataclass(frozen=True)
class RuntimeCommand:
    """How to start the runtime client of one runtime id on this host.

    ``argv`` is complete: run it with the working directory set to the code directory and
    the Lambda environment (``AWS_LAMBDA_RUNTIME_API``, ``_HANDLER``, ...), adding
    ``AWS_EXECUTION_ENV=execution_env``. For OS-only runtimes (family ``provided``) ``argv``
    and ``execution_env`` are empty: the environment runs the function's own ``bootstrap``.
    """

    runtime_id: str
    family: str
    version: str
    interpreter: str
    argv: list[str]
    execution_env: str


class RuntimeRegistry:
    """Resolves Lambda runtime ids to interpreters installed on this host.

    ``overrides`` is the operator's ``python3.12=/path/to/python,...`` setting and
    ``node_overrides`` its ``nodejs20.x=/path/to/node,...`` counterpart; both win over
    discovery and are taken as given (an operator may deliberately run ``nodejs18.x`` on
    Node.js 20). Executables are directory entries of ``search_path`` (default: ``PATH`` at
    first use; only absolute entries, and never pyenv ``shims`` directories, which
    re-dispatch on the caller's pyenv selection), then of ``system_dirs``.

    Python: per version ``X.Y``, ``pythonX.Y`` in those directories, then in
    ``<root>/versions/*/bin`` of each pyenv root (default: ``$PYENV_ROOT`` and ``~/.pyenv``),
    newest patch release first. Node.js: per major ``N``, the first ``node`` (or ``nodejs``)
    in those directories whose ``--version`` is ``vN.*``, then the newest ``N.*`` release
    under each of ``node_roots``, directories of version-named installs (default: those of
    nvm, n, fnm, Volta and asdf). Paths are returned resolved (``realpath``) so a virtualenv's
    link runs its base interpreter, not lambdalite's environment.
    """

    def __init__(
        self,
        overrides: str = "",
        *,
        node_overrides: str = "",
        search_path: str | None = None,
        system_dirs: Sequence[str] = _SYSTEM_DIRS,
        pyenv_roots: Sequence[str | Path] | None = None,
        node_roots: Sequence[str | Path] | None = None,
    ) -> None:
        self._overrides = {
            **_parse_overrides(overrides, PYTHON_RUNTIMES),
            **_parse_overrides(node_overrides, NODE_RUNTIMES),
        }
        self._search_path = search_path
        self._system_dirs = tuple(system_dirs)
        self._pyenv_roots = None if pyenv_roots is None else tuple(map(Path, pyenv_roots))
        self._node_roots = None if node_roots is None else tuple(map(Path, node_roots))
        self._lock = threading.Lock()
        self._found: dict[str, dict[str, str]] = {}

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
        """Supported runtime ids that have an interpreter here, mapped to its path. OS-only
        runtimes need none and are not listed; they are always available."""
        return {**self._discovered("python"), **self._discovered("nodejs")}

    def resolve(self, runtime_id: str) -> RuntimeCommand | None:
        """The command that starts ``runtime_id``, or None when it cannot run here."""
        if runtime_id in PROVIDED_RUNTIMES:
            release = runtime_id.partition(".")[2]
            return RuntimeCommand(runtime_id, "provided", release, "", [], "")
        if runtime_id in NODE_RUNTIMES:
            node = self._discovered("nodejs").get(runtime_id)
            if node is None:
                return None
            return RuntimeCommand(
                runtime_id=runtime_id,
                family="nodejs",
                version=_node_major_of(runtime_id),
                interpreter=node,
                argv=[node, *_NODE_FLAGS, str(node_bootstrap_path())],
                execution_env=f"AWS_Lambda_{runtime_id}",
            )
        interpreter = self._discovered("python").get(runtime_id)
        if interpreter is None:
            return None
        return RuntimeCommand(
            runtime_id=runtime_id,
            family="python",
            version=runtime_id.removeprefix("python"),
            interpreter=interpreter,
            argv=[interpreter, str(launcher_path())],
            execution_env=f"AWS_Lambda_{runtime_id}",
        )

    def _discovered(self, family: str) -> dict[str, str]:
        with self._lock:
            found = self._found.get(family)
            if found is None:
                discover = self._discover_node if family == "nodejs" else self._discover_python
                found = self._found[family] = discover()
            return found

    def _discover_python(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for runtime_id in PYTHON_RUNTIMES:
            path = self._overrides.get(runtime_id)
            if path is None:
                path = _first_executable(self._python_candidates(runtime_id[len("python") :]))
            if path is not None:
                found[runtime_id] = path
        return found

    def _discover_node(self) -> dict[str, str]:
        finder = NodeFinder(list(self._directories()), self._version_roots())
        found: dict[str, str] = {}
        for runtime_id in NODE_RUNTIMES:
            path = self._overrides.get(runtime_id)
            if path is None:
                path = finder.find(int(_node_major_of(runtime_id)))
            if path is not None:
                found[runtime_id] = path
        return found

    def _directories(self) -> Iterable[Path]:
        search_path = self._search_path
        if search_path is None:
            search_path = os.environ.get("PATH", os.defpath)
        for entry in search_path.split(os.pathsep):
            # Relative entries would depend on the server's working directory.
            if os.path.isabs(entry) and "shims" not in Path(entry).parts:
                yield Path(entry)
        for directory in self._system_dirs:
            yield Path(directory)

    def _python_candidates(self, version: str) -> Iterable[Path]:
        name = f"python{version}"
        for directory in self._directories():
            yield directory / name
        for root in self._roots():
            yield from _pyenv_interpreters(root, version)

    def _roots(self) -> tuple[Path, ...]:
        if self._pyenv_roots is not None:
            return self._pyenv_roots
        roots = [Path(os.environ["PYENV_ROOT"])] if os.environ.get("PYENV_ROOT") else []
        roots.append(Path.home() / ".pyenv")
        return tuple(dict.fromkeys(roots))

    def _version_roots(self) -> tuple[Path, ...]:
        return default_version_roots() if self._node_roots is None else self._node_roots


def _node_major_of(runtime_id: str) -> str:
    """``"20"`` for ``nodejs20.x``."""
    return runtime_id[len("nodejs") : -len(".x")]


def _parse_overrides(text: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """Parse ``<runtime>=<path>,...``; bad entries fail loudly at start-up."""
    result: dict[str, str] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        runtime_id, sep, path = (part.strip() for part in entry.partition("="))
        if not sep or not runtime_id or not path:
            raise ValueError(f"runtime override {entry!r} is not of the form <runtime>=<path>")
        if runtime_id not in allowed:
            raise ValueError(
                f"runtime override {entry!r}: {runtime_id!r} is not one of {', '.join(allowed)}"
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
