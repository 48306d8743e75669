"""Zygotes: pre-initialized fork servers, one per interpreter, that cold starts fork from.

Starting an interpreter and its runtime client costs tens of milliseconds per cold start;
forking a process that has already done both costs about one. A backend given a
``ForkableRuntime`` (by the composition root, when the ``zygotes`` setting is on) keeps a
``ZygotePool``: for a spawn whose command is exactly ``[<interpreter>, <script>]``, it asks
the pool for the fork server of that interpreter (started on first use) and has the child run
the preloaded runtime client in place of ``exec``. Everything else (other runtimes, exec
wrappers, custom commands) and every spawn the pool declines is exec'd as before.

The pool declines a spawn, and the program is exec'd, when forking could not give the
program what a new interpreter would: ``PYTHON*`` variables other than those the runtime
side reproduces (see ``lambdalite/runtimes/python/zygote.py``), dynamic loader variables
other than ``LD_LIBRARY_PATH``, or an ``LD_LIBRARY_PATH`` entry in the function's code or
layers that holds shared objects (the dynamic loader reads that variable only at exec). A
zygote is started at boot (``prestart``, see ``lambdalite/invocation/prestart.py``) or on the
first spawn of its interpreter; a spawn that finds it still starting waits for it only when it
should be ready sooner than an exec'd start would make up for (bounded, once per start), and
is exec'd otherwise. A zygote that dies is replaced on the next spawn without waiting: spawns
are exec'd until the replacement says it is ready. One that fails to start or answer again and
again is retried only now and then; meanwhile programs are exec'd.

Children forked ahead of need. After a cold start the pool has ``ahead`` children of the same
zygote forked (``ahead.py``: by a worker thread, more during a burst), each in a new cgroup
and, for namespace sandboxes, with the function-independent part of its sandbox built
(``inside.prepare``). The next cold start only sends one its plan. They are given up after
``ahead_idle`` seconds without a cold start of their kind (the server's keep-alive). See
``docs/adr/0012-python-zygotes.md``.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambdalite.sandbox import cgroups
from lambdalite.sandbox.ahead import AheadQueues
from lambdalite.sandbox.base import Limits
from lambdalite.sandbox.forkserver import ForkServer, Spawned, send_plan

log = logging.getLogger(__name__)

# Variables the forked runtime reproduces (or the platform always sets).
_PYTHON_HANDLED = frozenset(
    ("PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONIOENCODING", "PYTHONDONTWRITEBYTECODE")
)
# Makes the cgroup of a sandbox with these limits, for a child forked ahead of need or not
# (None: cgroups are not in use).
GroupFactory = Callable[[Limits, bool], "cgroups.Cgroup | None"]
# Children forked ahead are given up after this long without a cold start of their kind
# (default; servers pass their keep-alive), so a server left idle stops holding sandboxes
# (processes, cgroups) that no environment uses.
AHEAD_IDLE = 10.0
# About how long a zygote takes to start (until it says it is ready).
START_ESTIMATE = 0.1
# What an exec'd cold start costs more than a forked one: a cold start that finds its zygote
# still starting waits for it (the event loop with it, once per start) only when it is
# expected ready within this, and is exec'd otherwise.
EXEC_PENALTY = 0.04
_WAIT_MARGIN = 0.02
_GIVE_UP_AFTER = 3  # consecutive failures before an interpreter is exec'd for a while
_RETRY_EVERY = 50  # spawns between attempts once given up


@dataclass(frozen=True)
class ForkableRuntime:
    """Which commands may be forked from a zygote, and what the zygote preloads.

    ``script`` is the runtime client's start script (the second word of the command),
    ``preload`` the standard-library-only module a fork server loads (``preload(arg)``,
    ``run(argv, env)``; see ``forkserver``). The preload argument is the directory the
    program sees the script in.
    """

    script: Path
    preload: Path


class ZygotePool:
    """The zygotes of one backend, by interpreter and preload argument, and for each a few
    children forked ahead of need (``ahead``): each already in a cgroup of its own, so a cold
    start pays neither the fork nor the cgroup migration."""

    def __init__(
        self,
        runtime: ForkableRuntime,
        markers: Sequence[str] = (),
        ahead: int = 2,
        ahead_idle: float = AHEAD_IDLE,
    ) -> None:
        self.runtime = runtime
        self.ahead = ahead
        self.ahead_idle = ahead_idle
        self._script = os.path.realpath(runtime.script)
        self._realpaths: dict[str, str] = {}  # script paths of commands, resolved once
        self._markers = list(markers)
        self._servers: dict[tuple[str, str], ForkServer] = {}
        self._failures: dict[tuple[str, str], int] = {}
        self.queues = AheadQueues(ahead, ahead_idle)
        self._waited: set[tuple[str, str]] = set()
        self.start_estimate = START_ESTIMATE
        self._closed = False
        self.forks = 0  # children handed out, forked ahead or on demand
        self.ahead_used = 0  # of which were forked ahead

    def interpreter_for(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        libraries: Mapping[str, Path | None],
    ) -> str | None:
        """The interpreter to fork ``argv`` from, or None when it must be exec'd.

        ``libraries`` maps program-side directory prefixes (the task root, ``/opt``) to the
        host directories behind them, to look into ``LD_LIBRARY_PATH`` entries.
        """
        if len(argv) != 2 or not argv[0].startswith("/"):
            return None
        if self._resolved(argv[1]) != self._script:
            return None
        for name in env:
            if name.startswith("_LAMBDALITE_"):  # the platform's own arrangements: exec
                return None
            if name.startswith("PYTHON") and name not in _PYTHON_HANDLED:
                return None
            if name.startswith("LD_") and name != "LD_LIBRARY_PATH":
                return None
        if _loader_path_matters(env.get("LD_LIBRARY_PATH", ""), libraries):
            return None
        return argv[0]

    def _resolved(self, path: str) -> str:
        found = self._realpaths.get(path)
        if found is None:
            if len(self._realpaths) >= 256:
                self._realpaths.clear()
            found = self._realpaths[path] = os.path.realpath(path)
        return found

    def server(self, interpreter: str, visible_dir: str) -> ForkServer:
        key = (interpreter, visible_dir)
        server = self._servers.get(key)
        if server is None:
            server = ForkServer(interpreter, self._markers, self.runtime.preload, visible_dir)
            self._servers[key] = server
        return server

    def spawn(
        self,
        interpreter: str,
        visible_dir: str,
        plan: dict[str, Any],
        kind: str,
        limits: Limits,
        new_group: GroupFactory,
        early: dict[str, Any] | None = None,
        trees: Sequence[int] = (),
    ) -> tuple[Spawned, cgroups.Cgroup | None] | None:
        """Fork ``plan`` from the zygote of ``interpreter``, in a cgroup with ``limits``
        (made by ``new_group``); None when that is not possible now (the caller execs).

        ``early`` (namespace sandboxes) is the function-independent part of the sandbox,
        which children forked ahead of need build while they wait; ``trees`` are the mount
        trees the plan's ``attach`` steps name (the caller keeps and closes them)."""
        key = (interpreter, visible_dir)
        failures = self._failures.get(key, 0)
        if failures >= _GIVE_UP_AFTER:
            self._failures[key] = failures + 1
            if (failures - _GIVE_UP_AFTER) % _RETRY_EVERY:
                return None
        plan = {**plan, "in_process": True, "cgroups": []}
        try:
            result = self._from_pending((*key, kind), plan, limits, trees)
            found = result is not None
            if result is None:
                if not self._usable(key):
                    log.debug("zygote of %s not ready: exec", interpreter)
                    return None
                result = self._fork_now(key, kind, plan, limits, new_group, early, trees)
        except OSError as exc:
            self._failures[key] = failures + 1
            log.warning("zygote of %s failed (%s); starting a new interpreter", interpreter, exc)
            return None
        self._failures.pop(key, None)
        self.forks += 1
        log.debug("%s sandbox forked from the zygote of %s", kind, interpreter)

        def fork_ahead(memory_mb: int) -> tuple[Spawned, cgroups.Cgroup | None]:
            server = self.server(*key)
            if not (server.running and server.ready()):  # the next cold start restarts it
                raise OSError(errno.ESRCH, f"the zygote of {interpreter} is not running")
            placeholder = Limits(memory_mb=memory_mb, ephemeral_mb=1)
            return self._fork_now(key, kind, None, placeholder, new_group, early)

        self.queues.used((*key, kind), limits.memory_mb, found, fork_ahead)
        return result

    def _usable(self, key: tuple[str, str]) -> bool:
        """Whether the zygote can fork now. A zygote still starting is waited for (once per
        start) when it should be ready sooner than an exec'd start would make up for
        (``EXEC_PENALTY``), else the program is exec'd; a replacement for one that died is
        never waited for (the event loop would stall again and again on a zygote that keeps
        failing)."""
        server = self.server(*key)
        if not server.running:
            if server.starts:
                self._failures[key] = self._failures.get(key, 0) + 1
                log.warning("zygote of %s exited; starting another", key[0])
                server.close()
                server.start()
                return False
            server.start()
        if server.ready():
            return True
        if key in self._waited:
            return False
        elapsed = time.monotonic() - server.started_at
        remaining = self.start_estimate - elapsed
        if remaining > EXEC_PENALTY:
            return False
        self._waited.add(key)
        return server.wait_ready(max(0.0, remaining) + _WAIT_MARGIN)

    def _from_pending(
        self,
        key: tuple[str, str, str],
        plan: dict[str, Any],
        limits: Limits,
        trees: Sequence[int] = (),
    ) -> tuple[Spawned, cgroups.Cgroup | None] | None:
        # A process child's exit is reported by its zygote: none from a zygote that died.
        if key[2] == "process" and not self.server(key[0], key[1]).running:
            self.queues.drop(key)
            return None
        while True:
            pending = self.queues.take(key)
            if pending is None:
                return None
            if not pending.alive():
                pending.discard()
                continue
            try:
                if pending.group is not None and pending.memory_mb != limits.memory_mb:
                    pending.group.resize(limits.memory_mb)
                send_plan(pending.spawned, plan, trees)
            except OSError:
                pending.discard()
                continue
            self.ahead_used += 1
            return pending.spawned, pending.group

    def _fork_now(
        self,
        key: tuple[str, str],
        kind: str,
        plan: dict[str, Any] | None,
        limits: Limits,
        new_group: GroupFactory,
        early: dict[str, Any] | None,
        trees: Sequence[int] = (),
    ) -> tuple[Spawned, cgroups.Cgroup | None]:
        group = new_group(limits, plan is None)
        procs = [os.fsdecode(p) for p in group.procs_files()] if group is not None else []
        if kind == "namespace":  # process 2 joins them while its init builds the rest
            prelude = {"cgroups": [], "early": {**(early or {}), "cgroups": procs}}
        else:
            prelude = {"cgroups": procs}
        try:
            spawned = self.server(*key).spawn(plan, kind, prelude, trees)
        except BaseException:
            if group is not None:
                group.remove()
            raise
        return spawned, group

    def prestart(self, interpreter: str, visible_dir: str) -> None:
        """Start the zygote of ``interpreter`` now (without waiting for it), so that the
        first cold starts of that interpreter can already be forked."""
        server = self.server(interpreter, visible_dir)
        if not server.running:
            server.close()
            server.start()

    def pids(self) -> dict[str, int]:
        """Running zygotes: interpreter -> pid."""
        return {key[0]: s.pid for key, s in self._servers.items() if s.running and s.pid}

    def close(self) -> None:
        self._closed = True
        self.queues.close()
        for server in self._servers.values():
            server.close()
        self._servers.clear()


def _loader_path_matters(value: str, libraries: Mapping[str, Path | None]) -> bool:
    """Whether an ``LD_LIBRARY_PATH`` entry inside the code or layers holds shared objects."""
    for entry in value.split(os.pathsep):
        for prefix, host in libraries.items():
            if host is None or not (entry == prefix or entry.startswith(prefix + "/")):
                continue
            directory = str(host) + entry[len(prefix) :]
            try:
                with os.scandir(directory) as found:
                    if any(_shared_object(item.name) for item in found):
                        return True
            except OSError:
                pass
    return False


def _shared_object(name: str) -> bool:
    """A library the loader may be asked for (Python extension modules are imported by path)."""
    return ".so" in name and ".cpython-" not in name and not name.endswith(".abi3.so")
