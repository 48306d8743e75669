"""What an environment runs: a custom runtime's bootstrap, and the extension launcher, which is
run here for real with /bin/sh."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from lambdalite.invocation import entrypoint
from lambdalite.invocation.runtime_api import RuntimeApi
from lambdalite.runtimes.registry import PROVIDED_RUNTIMES, RuntimeRegistry
from lambdalite.sandbox.base import Layout
from lambdalite.sandbox.mounts import check_executable

from .conftest import make_spec, run_async


def executable(path: Path, text: str = "#!/bin/sh\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def sandbox_layout(code: Path, opt: Path) -> Layout:
    """A layout like the namespace backend's: code at /var/task, layers at /opt."""
    return Layout(code, Path("/runtime"), "/var/task", "/var/runtime", "/opt")


def test_registry_knows_the_os_only_runtimes() -> None:
    registry = RuntimeRegistry(search_path="", system_dirs=(), pyenv_roots=[], node_roots=[])
    for runtime_id in PROVIDED_RUNTIMES:
        assert registry.is_supported(runtime_id)
        command = registry.resolve(runtime_id)
        assert command is not None and command.family == "provided"
        assert command.argv == [] and command.execution_env == ""


def test_bootstrap_from_the_code_then_from_the_layers(tmp_path: Path) -> None:
    code, opt = tmp_path / "code", tmp_path / "opt"
    code.mkdir()
    opt.mkdir()
    spec = make_spec(code, runtime="provided.al2023", opt_dir=opt)
    with pytest.raises(OSError) as missing:
        entrypoint.custom_bootstrap(spec, sandbox_layout(code, opt))
    assert str(missing.value) == entrypoint.MISSING_BOOTSTRAP
    executable(opt / "bootstrap")
    assert entrypoint.custom_bootstrap(spec, sandbox_layout(code, opt)) == ["/opt/bootstrap"]
    assert entrypoint.custom_bootstrap(spec, Layout.identity(code, Path("/r"), opt)) == [
        str(opt / "bootstrap")
    ]
    executable(code / "bootstrap")
    assert entrypoint.custom_bootstrap(spec, sandbox_layout(code, opt)) == [str(code / "bootstrap")]


def test_a_layer_bootstrap_passes_the_sandbox_check(tmp_path: Path) -> None:
    # /opt/bootstrap is not a host path: the namespace backend must not refuse it.
    check_executable("/opt/bootstrap", sandbox_layout(tmp_path, tmp_path))


def test_external_extensions_are_the_executable_files(tmp_path: Path) -> None:
    assert entrypoint.external_extensions(None) == ()
    assert entrypoint.external_extensions(tmp_path) == ()
    executable(tmp_path / "extensions" / "zeta")
    executable(tmp_path / "extensions" / "alpha")
    (tmp_path / "extensions" / "notes.txt").write_text("not executable")
    (tmp_path / "extensions" / "dir").mkdir()
    assert entrypoint.external_extensions(tmp_path) == ("alpha", "zeta")


@run_async
async def test_prepare_adds_the_launcher_only_with_extensions(tmp_path: Path) -> None:
    code, opt = tmp_path / "code", tmp_path / "opt"
    code.mkdir()
    opt.mkdir()
    api = RuntimeApi("127.0.0.1")
    spec = make_spec(code, opt_dir=opt)
    env = {"_HANDLER": "app.handler", "PATH": "/usr/bin"}
    lines: list[str] = []
    argv, output = entrypoint.prepare(
        api, spec, ["python", "launcher.py"], env, sandbox_layout(code, opt), lines.append, print
    )
    assert argv == ["python", "launcher.py"] and api.extensions is None
    assert output == lines.append and set(env) == {"_HANDLER", "PATH"}
    executable(opt / "extensions" / "logger")
    argv, output = entrypoint.prepare(
        api, spec, ["python", "launcher.py"], env, sandbox_layout(code, opt), lines.append, print
    )
    assert argv == [entrypoint.SHELL, str(entrypoint.LAUNCHER), "python", "launcher.py"]
    assert api.extensions is not None and api.extensions.launched == ("logger",)
    assert env[entrypoint.EXT_DIR] == "/opt/extensions"
    assert env[entrypoint.EXT_HIDE] == "_HANDLER"
    output("a line")
    output(f"{env[entrypoint.EXT_MARK]} 0 logger")
    await asyncio.sleep(0)
    assert lines == ["a line"] and api.extensions.exits == {"logger": 0}


def test_launcher_starts_extensions_then_becomes_the_runtime(tmp_path: Path) -> None:
    extensions = tmp_path / "extensions"
    executable(
        extensions / "probe",
        '#!/bin/sh\necho "probe handler=${_HANDLER-hidden} custom=$CUSTOM '
        'launcher=${_LAMBDALITE_EXT_MARK-gone}"\nexit 3\n',
    )
    (extensions / "ignored").write_text("#!/bin/sh\necho should not run\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "CUSTOM": "yes",
        "_HANDLER": "app.handler",
        "_X_TRACE": "t",
        entrypoint.EXT_DIR: str(extensions),
        entrypoint.EXT_MARK: "MARK42",
        entrypoint.EXT_HIDE: "_HANDLER _X_TRACE",
    }
    runtime = (
        'sleep 0.3; echo "runtime pid=$$ handler=$_HANDLER launcher=${_LAMBDALITE_EXT_DIR-gone}"'
    )
    proc = subprocess.run(
        [entrypoint.SHELL, str(entrypoint.LAUNCHER), "/bin/sh", "-c", runtime],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stderr
    assert "probe handler=hidden custom=yes launcher=gone" in lines
    assert "MARK42 3 probe" in lines
    assert "should not run" not in proc.stdout
    (runtime_line,) = [line for line in lines if line.startswith("runtime")]
    assert runtime_line.endswith("handler=app.handler launcher=gone")
    assert os.path.isfile(entrypoint.LAUNCHER)
