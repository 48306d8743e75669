"""Execution environments of container image functions.

An image function brings its own root file system and says itself what to run, so the
environment is the same as for any function except for two things, both decided here so
``environment.py`` needs no case of its own: the command is the image's (``ImageLaunch.argv``)
instead of a runtime's, and the backend is asked to use the image's tree as the root
(``ImageBackend``), with the working directory inside it. The program sees the Lambda paths
(``LAMBDA_TASK_ROOT=/var/task``, ``LAMBDA_RUNTIME_DIR=/var/runtime``), as in AWS's images.
Backends that cannot change a program's root refuse it when spawning, and the invocation
fails with ``Runtime.InvalidEntrypoint`` saying why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lambdalite.config import Settings
from lambdalite.invocation.environment import ExecutionEnvironment
from lambdalite.invocation.model import FunctionSpec, ImageLaunch, LogSink
from lambdalite.sandbox.base import Layout, Limits, OutputCallback, Sandbox, SandboxBackend

TASK_ROOT = "/var/task"
RUNTIME_DIR = "/var/runtime"


class ImageBackend:
    """``inner`` as one image function's environments use it."""

    def __init__(self, inner: SandboxBackend, image: ImageLaunch) -> None:
        self._inner = inner
        self._image = image

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
        rootfs: Path | None = None,
    ) -> Sandbox:
        del cwd, runtime_dir, opt_dir, rootfs  # the image's, not the host's
        # Backends that can root a program elsewhere take ``rootfs`` (namespace sandboxes;
        # process sandboxes refuse it with an OSError that says why).
        spawn: Callable[..., Sandbox] = self._inner.spawn
        return spawn(
            argv,
            env,
            Path(self._image.workdir),
            limits,
            on_output,
            label=label,
            rootfs=self._image.rootfs,
        )

    def layout(self, code_dir: Path, runtime_dir: Path, opt_dir: Path | None = None) -> Layout:
        return Layout(self._image.rootfs, runtime_dir, TASK_ROOT, RUNTIME_DIR)

    @property
    def runtime_api_address(self) -> str | None:
        return self._inner.runtime_api_address

    @property
    def isolation(self) -> str:
        return self._inner.isolation

    async def close(self) -> None:
        """Nothing of its own to close: the shared backend is closed by its owner."""

    def __getattr__(self, name: str) -> Any:
        # Anything else a caller asks of a backend is the shared backend's.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)


def image_environment(
    spec: FunctionSpec,
    settings: Settings,
    backend: SandboxBackend,
    sink: LogSink,
    runtime_dir: Path,
) -> ExecutionEnvironment:
    """A new environment of the image function ``spec`` (``spec.image`` is set)."""
    assert spec.image is not None
    image_backend = ImageBackend(backend, spec.image)
    return ExecutionEnvironment(
        spec, list(spec.image.argv), settings, image_backend, sink, runtime_dir
    )
