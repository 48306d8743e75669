"""The environment variables a runtime process starts with.

Three layers, later ones winning: the platform's unreserved defaults (``LANG``, ``PATH``,
``LD_LIBRARY_PATH``, ...), the function's own variables, and the reserved variables the
platform always sets (a function cannot override ``AWS_LAMBDA_RUNTIME_API`` or ``_HANDLER``).
Nothing is inherited from the server's own environment, so no host secrets leak into functions.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from pathlib import Path

from lambdalite.invocation.model import FunctionSpec
from lambdalite.sandbox.base import SandboxBackend

EXEC_WRAPPER = "AWS_LAMBDA_EXEC_WRAPPER"
AWS_TASK_ROOT = "/var/task"
_BASE_PATH = "/usr/local/bin:/usr/bin/:/bin"
AWS_OPT = "/opt"


def log_stream_name(version: str, now: float) -> str:
    """``YYYY/MM/DD/[<version>]<32 hex>``, one per environment."""
    day = datetime.fromtimestamp(now, tz=timezone.utc).strftime("%Y/%m/%d")
    return f"{day}/[{version}]{secrets.token_hex(16)}"


def runtime_argv(spec: FunctionSpec, command: list[str]) -> list[str]:
    """The runtime command, behind the function's exec wrapper script when it names one.

    Functions written for AWS name their wrapper by its path in the Lambda file system; one
    under ``/var/task`` (the task root there) is looked up in the code directory, where the
    deployment package lives on the host. The argv holds host paths either way: a sandbox
    that mounts the code at ``/var/task`` maps it back (see ``sandbox.base.Layout``).
    """
    wrapper = spec.environment.get(EXEC_WRAPPER)
    if not wrapper or not command:  # OS-only runtimes (no command) run no wrapper, as on AWS
        return list(command)
    if wrapper.startswith(AWS_TASK_ROOT + "/") and not Path(wrapper).exists():
        wrapper = str(spec.code_dir / wrapper[len(AWS_TASK_ROOT) + 1 :])
    return [wrapper, *command]


def runtime_environment(
    spec: FunctionSpec,
    api_address: str,
    log_stream: str,
    runtime_dir: Path | str,
    interpreter_dir: Path | None = None,
    task_root: str | None = None,
    opt_dir: str = AWS_OPT,
    init_type: str = "on-demand",
) -> dict[str, str]:
    """Variables for one environment. ``interpreter_dir`` goes first on ``PATH``, as the
    managed images put their language's bin directory there. ``task_root`` and
    ``runtime_dir`` are the paths the runtime sees (``/var/task`` and ``/var/runtime`` in a
    sandbox with a file system of its own); ``task_root`` defaults to the code directory.
    ``opt_dir`` is where the program sees the layers: when that is not ``/opt`` (a backend
    showing host paths), the language search paths the runtime clients derive from ``/opt``
    are named through ``PYTHONPATH`` and ``NODE_PATH`` instead. ``init_type`` is how the
    environment was started: ``on-demand`` or ``provisioned-concurrency``."""
    task_root = task_root or str(spec.code_dir)
    runtime = str(runtime_dir)
    base = f"{_BASE_PATH}:{opt_dir}/bin"
    path = f"{interpreter_dir}:{base}" if interpreter_dir else base
    defaults = {
        "LANG": "en_US.UTF-8",
        "PATH": path,
        "LD_LIBRARY_PATH": ":".join(
            [
                "/lib64",
                "/usr/lib64",
                runtime,
                f"{runtime}/lib",
                task_root,
                f"{task_root}/lib",
                f"{opt_dir}/lib",
            ]
        ),
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    }
    if opt_dir != AWS_OPT:
        defaults.update(_language_paths(spec.runtime, opt_dir, runtime, task_root))
    if spec.image is not None:  # a container image: its ENV, under the function's variables
        defaults.update(spec.image.env)
    reserved = {
        "_HANDLER": spec.handler,
        "AWS_LAMBDA_RUNTIME_API": api_address,
        "LAMBDA_TASK_ROOT": task_root,
        "LAMBDA_RUNTIME_DIR": runtime,
        "AWS_REGION": spec.region,
        "AWS_DEFAULT_REGION": spec.region,
        "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_INITIALIZATION_TYPE": init_type,
        "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_LAMBDA_LOG_FORMAT": spec.log_format,
        # Placeholder credentials: SDKs inside functions find some and can talk to an
        # endpoint that does not check them.
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_SESSION_TOKEN": "test",
        "TZ": ":UTC",
    }
    if spec.runtime and not spec.runtime.startswith("provided"):  # images have no runtime
        reserved["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{spec.runtime}"
    if spec.log_level:
        reserved["AWS_LAMBDA_LOG_LEVEL"] = spec.log_level
    return {**defaults, **spec.environment, **reserved}


def _language_paths(runtime: str, opt_dir: str, runtime_dir: str, task_root: str) -> dict[str, str]:
    """Search paths for layers shown somewhere else than ``/opt``."""
    if runtime.startswith("python"):
        version = runtime[len("python") :]
        site = f"{opt_dir}/python/lib/python{version}/site-packages"
        return {"PYTHONPATH": f"{opt_dir}/python:{site}"}
    if runtime.startswith("nodejs"):
        major = runtime[len("nodejs") :].split(".")[0]
        # The Node client only fills in NODE_PATH when it is unset, so name all of it here.
        modules = [
            f"{opt_dir}/nodejs/node{major}/node_modules",
            f"{opt_dir}/nodejs/node_modules",
            f"{runtime_dir}/node_modules",
            runtime_dir,
            task_root,
        ]
        return {"NODE_PATH": ":".join(modules)}
    return {}


def sandbox_environment(
    spec: FunctionSpec,
    backend: SandboxBackend,
    runtime_dir: Path,
    argv: list[str],
    api_address: str,
    log_stream: str,
    init_type: str = "on-demand",
) -> dict[str, str]:
    """``runtime_environment`` for a program ``backend`` will start: paths as the program
    sees them, the interpreter's directory (``argv[0]``) first on ``PATH``."""
    layout = backend.layout(spec.code_dir, runtime_dir, spec.opt_dir)
    first = argv[0] if argv else ""
    interpreter_dir = Path(layout.translate(first)).parent if first.startswith("/") else None
    return runtime_environment(
        spec,
        api_address,
        log_stream,
        layout.runtime_dir,
        interpreter_dir,
        task_root=layout.task_root,
        opt_dir=layout.opt_dir,
        init_type=init_type,
    )
