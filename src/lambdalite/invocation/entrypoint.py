"""What an environment's sandbox runs: the runtime command, or a custom runtime's ``bootstrap``,
behind the extension launcher when the function's layers bring extensions.

OS-only runtimes (``provided``, ``provided.al2``, ``provided.al2023``) have no runtime client of
ours: the function brings an executable named ``bootstrap``, in its code (``/var/task``) or in
a layer (``/opt``), which talks to the Runtime API itself. The platform looks for it on the
host before anything starts, so a function without one fails INIT with the platform's own
``Runtime.InvalidEntrypoint`` message.

External extensions are the executable files of ``/opt/extensions``. A sandbox runs a single
program, so when there are any the program is ``runtimes/extensions/launch.sh`` (run by
``/bin/sh``): it starts each extension in the background with the ``_``-prefixed variables
removed, waits (with curl, when the sandbox has it) until each has registered, then replaces
itself with the runtime. Environments with extensions therefore always
start the runtime by ``exec`` (never from a pre-initialized interpreter), which is what the
launcher's ``argv`` (``/bin/sh`` first) says to any backend that looks at it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING

from lambdalite.invocation.extensions import REGISTERED_PATH, ExtensionsApi
from lambdalite.invocation.model import FunctionSpec
from lambdalite.sandbox.base import Layout

if TYPE_CHECKING:
    from lambdalite.invocation.runtime_api import RuntimeApi

CUSTOM_RUNTIME_PREFIX = "provided"
BOOTSTRAP = "bootstrap"
MISSING_BOOTSTRAP = "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]"
SHELL = "/bin/sh"
# Shipped with the runtime clients; the invocation path only needs its location.
LAUNCHER = Path(__file__).resolve().parent.parent / "runtimes" / "extensions" / "launch.sh"
# Variables only the launcher reads (and removes before anything else starts).
EXT_DIR, EXT_MARK, EXT_HIDE = "_LAMBDALITE_EXT_DIR", "_LAMBDALITE_EXT_MARK", "_LAMBDALITE_EXT_HIDE"
EXT_WAIT = "_LAMBDALITE_EXT_WAIT"

Emit = Callable[[str], None]


def is_custom_runtime(runtime: str) -> bool:
    """Whether ``runtime`` is an OS-only runtime that runs the function's own ``bootstrap``."""
    return runtime.startswith(CUSTOM_RUNTIME_PREFIX)


def custom_bootstrap(spec: FunctionSpec, layout: Layout) -> list[str]:
    """The command of an OS-only runtime: the code's ``bootstrap``, else the layers'.

    Raises ``OSError`` with the platform's message when neither exists. A ``bootstrap`` that
    exists but cannot be executed is left to the sandbox, which fails the same way ``exec``
    would (``Runtime.InvalidEntrypoint`` with the reason).
    """
    in_code = spec.code_dir / BOOTSTRAP
    if os.path.lexists(in_code):
        return [str(in_code)]
    if spec.opt_dir is not None and os.path.lexists(spec.opt_dir / BOOTSTRAP):
        return [f"{layout.opt_dir.rstrip('/')}/{BOOTSTRAP}"]
    raise OSError(MISSING_BOOTSTRAP)


def external_extensions(opt_dir: Path | None) -> tuple[str, ...]:
    """File names of the executables in the layers' ``extensions`` directory, sorted as the
    launcher's glob sorts them."""
    if opt_dir is None:
        return ()
    try:
        entries = list(os.scandir(opt_dir / "extensions"))
    except OSError:
        return ()
    names = [e.name for e in entries if e.is_file() and os.access(e.path, os.X_OK)]
    return tuple(sorted(names))


def prepare(
    api: RuntimeApi,
    spec: FunctionSpec,
    argv: list[str],
    env: MutableMapping[str, str],
    layout: Layout,
    on_output: Emit,
    emit: Emit,
    drain: Callable[[], None] = lambda: None,
) -> tuple[list[str], Emit]:
    """The argv and output callback to spawn the environment with.

    ``argv`` is the runtime command (empty for OS-only runtimes); ``env`` is the runtime's
    environment, completed here with what the extension launcher needs; ``emit`` writes
    platform lines, after ``drain`` has passed on the output already written (so the log
    keeps the order things happened in). With extensions, ``api`` gets its Extensions API
    attached. Raises
    ``OSError`` when the function cannot start (no ``bootstrap``).
    """
    custom = not argv and is_custom_runtime(spec.runtime)
    program = custom_bootstrap(spec, layout) if custom else list(argv)
    # A container image is a root of its own, where neither the launcher nor the layers'
    # tree is shown: its extensions are not started.
    launched = external_extensions(spec.opt_dir) if spec.image is None else ()
    if not launched:
        return program, on_output
    extensions = ExtensionsApi(
        api,
        launched,
        function_name=spec.function_name,
        version=spec.version,
        handler=spec.handler,
        account_id=spec.account_id,
        log_format=spec.log_format,
        emit=_after(drain, emit),
    )
    api.extensions = extensions
    marker = f"lambdalite-extension-exit-{secrets.token_hex(12)}"
    hidden = " ".join(name for name in env if name.startswith("_"))
    env[EXT_DIR] = f"{layout.opt_dir.rstrip('/')}/extensions"
    env[EXT_MARK] = marker
    env[EXT_HIDE] = hidden
    env[EXT_WAIT] = REGISTERED_PATH
    return [SHELL, str(LAUNCHER), *program], extensions.output_filter(marker, on_output)


def _after(drain: Callable[[], None], emit: Emit) -> Emit:
    def drained_emit(line: str) -> None:
        drain()
        emit(line)

    return drained_emit
