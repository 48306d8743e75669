"""The contract between the invocation path and whatever isolates a function's processes.

A sandbox runs one program (the runtime) and everything it starts, under resource limits, and
can take all of it down again. It knows nothing about the Runtime API, the store or invocations:
it sees an argv, an environment, a working directory and limits, and reports output lines,
the exit status, memory figures and whether the memory limit killed it.

Threading: sandboxes and backends belong to the asyncio event loop that spawned them. Every
method is called from that loop's thread; none is safe to call from another thread. Output
callbacks run on the loop thread too, in the order the bytes were written; they must not raise.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# Called with one output line: no trailing newline, a '\r' inside stays. stdout and stderr share
# one pipe, so lines arrive in the order they were written across both streams, as they do in
# the platform's single log stream.
OutputCallback = Callable[[str], None]


@dataclass(frozen=True)
class Limits:
    """Per-sandbox resource limits, mirroring the quotas of a standard function.

    ``nproc`` is enforced per sandbox only where a pids cgroup is available: the
    ``RLIMIT_NPROC`` rlimit counts every process of the user, not of the sandbox, so it is not
    used.
    """

    memory_mb: int
    ephemeral_mb: int
    nofile: int = 1024
    nproc: int = 1024


@dataclass(frozen=True)
class Layout:
    """Where a sandboxed program finds the function's code and the runtime client.

    ``spawn`` takes host paths (the code directory as ``cwd``, host paths in ``argv``); a
    backend that gives the program a file system view of its own shows them elsewhere, at
    ``task_root`` and ``runtime_dir``. The environment variables a runtime reads
    (``LAMBDA_TASK_ROOT``, ``LAMBDA_RUNTIME_DIR``, ...) must name what the program sees, so the
    caller builds them from the layout and translates host paths with ``translate``.
    """

    host_task_root: Path
    host_runtime_dir: Path
    task_root: str
    runtime_dir: str
    # Where the program sees the function's layers (an empty ``/opt`` when it has none).
    opt_dir: str = "/opt"

    @classmethod
    def identity(cls, code_dir: Path, runtime_dir: Path, opt_dir: Path | None = None) -> Layout:
        """The layout of a backend that shows the program the host's own file system."""
        opt = str(opt_dir) if opt_dir is not None else "/opt"
        return cls(code_dir, runtime_dir, str(code_dir), str(runtime_dir), opt)

    def translate(self, path: str) -> str:
        """``path`` on the host as the program sees it (unchanged when not under a mapping)."""
        for host, inside in (
            (str(self.host_task_root), self.task_root),
            (str(self.host_runtime_dir), self.runtime_dir),
        ):
            if path == host:
                return inside
            if path.startswith(host.rstrip(os.sep) + os.sep):
                return inside.rstrip("/") + "/" + path[len(host) :].lstrip(os.sep)
        return path


class Sandbox(Protocol):
    """One running program and all of its descendants."""

    @property
    def pid(self) -> int:
        """Process id of the program that was spawned."""

    @property
    def memory_enforced(self) -> bool:
        """Whether exceeding ``Limits.memory_mb`` kills the sandbox (cgroup or poll mode)."""

    async def wait(self) -> int:
        """Wait for the spawned program to exit; ``Popen.returncode`` convention.

        ``>= 0`` is an exit status, ``< 0`` the number of the signal that killed it. Descendants
        may outlive it; ``destroy`` takes care of them.
        """

    def exit_status(self) -> int | None:
        """The status ``wait`` returns, or None while the program runs."""

    def drain(self, flush_partial: bool = False) -> None:
        """Deliver, synchronously, every output line already written by the sandbox.

        Output is otherwise delivered as the event loop gets to it; callers that need "all output
        written so far" (before a marker line of their own) call this first. With
        ``flush_partial`` an unterminated last line is delivered as a line too.
        """

    def kill(self) -> None:
        """Send SIGKILL to the spawned program's process group; returns at once."""

    async def destroy(self) -> None:
        """Kill every process the sandbox started and release its resources.

        This includes background children and daemons that left the process group or session
        (found through cgroup membership, or through process tracking where cgroups are not
        available). Idempotent and safe to call at any time, also concurrently; it returns when
        the processes are gone (or after a bounded wait) and never raises.
        """

    def memory_peak_mb(self) -> int:
        """Highest memory use seen so far, in MB (rounded up)."""

    def oom_killed(self) -> bool:
        """Whether the memory limit killed a process of this sandbox."""

    async def runtime_api_socket(self) -> socket.socket | None:
        """The listening socket the Runtime API must serve, made inside the sandbox.

        Only for backends whose ``runtime_api_address`` is set (the sandbox has a network of
        its own, so only a socket created in there is reachable by the program). Resolves to
        None when the sandbox exits before handing one over.
        """

    def owns_connection(self, conn: PeerSocket) -> bool:
        """Whether a connection accepted by this sandbox's Runtime API comes from its program.

        Backends that share the host network with other sandboxes use it so that one
        environment cannot talk to another one's Runtime API.
        """


class PeerSocket(Protocol):
    """The part of a connected socket a backend needs to tell who is on the other end."""

    @property
    def family(self) -> int: ...

    def getsockname(self) -> Any: ...

    def getpeername(self) -> Any: ...


class SandboxBackend(Protocol):
    def spawn(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        limits: Limits,
        on_output: OutputCallback,
        label: str = "",
        runtime_dir: Path | None = None,
        opt_dir: Path | None = None,
    ) -> Sandbox:
        """Start ``argv`` in a new sandbox. ``label`` only names it (cgroup names, debugging).

        ``cwd`` is the function's code directory and ``runtime_dir`` the runtime client's, both
        host paths; ``argv`` names host paths too. A backend with a view of its own makes them
        visible at the places ``layout`` gives (read-only) and translates ``argv``; ``env`` is
        passed as it is, so the caller builds it from ``layout``. ``opt_dir`` is the host tree
        of the function's layers, shown read-only at ``/opt`` by backends with a view of their own.

        Raises ``OSError`` when the program cannot be started (missing executable, bad cwd).
        Must be called from the running event loop.
        """

    def layout(self, code_dir: Path, runtime_dir: Path, opt_dir: Path | None = None) -> Layout:
        """Where programs of this backend see ``code_dir``, ``runtime_dir`` and ``opt_dir``."""

    @property
    def runtime_api_address(self) -> str | None:
        """``host:port`` of the Runtime API as programs of this backend reach it, when fixed.

        None: the sandbox shares the host network and the caller listens where it likes.
        Otherwise the caller serves ``Sandbox.runtime_api_socket()`` and announces this address.
        """

    @property
    def isolation(self) -> str:
        """One line describing the isolation level, for logs and health reports."""

    async def close(self) -> None:
        """Destroy every sandbox still alive and stop background work."""


def describe_exit(status: int) -> str:
    """Describe an exit status the way the platform's error messages do.

    ``exit status 3``, ``signal: killed``, ``signal: segmentation fault``: the wording of Go's
    process states, which AWS uses in ``Runtime exited with error: ...``.
    """
    if status >= 0:
        return f"exit status {status}"
    signum = -status
    try:
        text = signal.strsignal(signum) or f"signal {signum}"
    except ValueError:
        text = f"signal {signum}"
    if len(text) > 1 and not text[1].isupper():
        text = text[0].lower() + text[1:]
    return f"signal: {text}"
