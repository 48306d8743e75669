"""Zygotes started at boot, so that not even the first cold start of an interpreter waits.

A zygote takes tens of milliseconds to start (an interpreter, then the runtime client's
imports). Started on the first cold start of its interpreter, that is paid by the first
invocation; started here, in the background as the server comes up, it is paid by nobody. The
interpreters worth it are the server's own Python's runtime (the most likely to be used) and
every runtime a stored function or version names. Serving does not wait for any of it: the
store is read in a worker thread, and each zygote is only started here, never waited for (a
cold start that comes first waits for it or is exec'd, see ``sandbox/zygotes.py``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from lambdalite.runtimes.registry import RuntimeCommand
from lambdalite.sandbox.process import ProcessSandboxBackend
from lambdalite.store.base import Store

log = logging.getLogger(__name__)

# Store documents that hold a function configuration (its runtime id in ``config.Runtime``).
FUNCTION_KINDS = ("function", "version")
OWN_RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"
_tasks: set[asyncio.Task[list[str]]] = set()  # running boot starts, kept from the collector


def stored_runtimes(store: Store) -> set[str]:
    """Every runtime id a stored function or published version names."""
    found: set[str] = set()
    for kind in FUNCTION_KINDS:
        for doc in store.list(kind):
            config = doc.data.get("config")
            runtime = config.get("Runtime") if isinstance(config, dict) else None
            if isinstance(runtime, str) and runtime:
                found.add(runtime)
    return found


async def prestart_zygotes(
    backend: ProcessSandboxBackend,
    store: Store,
    resolve: Callable[[str], RuntimeCommand | None],
    runtime_dir: Path,
) -> list[str]:
    """Start the zygotes of the server's own Python runtime and of every stored function's
    runtime; the runtime ids whose zygote was started. ``resolve`` gives a runtime id's
    command (host paths), None when this host has no interpreter for it."""
    if backend.zygotes is None:
        return []
    await asyncio.sleep(0)  # let the server start serving first
    wanted = [OWN_RUNTIME]
    try:
        wanted += sorted(await asyncio.to_thread(stored_runtimes, store) - {OWN_RUNTIME})
    except Exception:
        log.exception("cannot list the stored functions' runtimes")
    started = []
    for runtime in wanted:
        command = resolve(runtime)
        try:
            if command is not None and backend.prestart_zygote(command.argv, runtime_dir):
                started.append(runtime)
        except OSError as exc:
            log.warning("cannot start the zygote of %s: %s", runtime, exc)
    if started:
        log.info("zygotes starting for %s", ", ".join(started))
    return started


def start_at_boot(
    backend: ProcessSandboxBackend,
    store: Store,
    resolve: Callable[[str], RuntimeCommand | None],
    runtime_dir: Path,
) -> asyncio.Task[list[str]]:
    """``prestart_zygotes`` as a background task of the running loop."""
    task = asyncio.get_running_loop().create_task(
        prestart_zygotes(backend, store, resolve, runtime_dir)
    )
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task
