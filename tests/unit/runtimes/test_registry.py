"""RuntimeRegistry: runtime ids, interpreter discovery and the commands it builds."""

from __future__ import annotations

import os
from pathlib import Path

import botocore.session
import pytest

from lambdalite.runtimes import (
    KNOWN_RUNTIMES,
    SUPPORTED_RUNTIMES,
    RuntimeRegistry,
    bootstrap_path,
    launcher_path,
)


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def isolated(overrides: str = "", search_path: str = "", **kwargs: object) -> RuntimeRegistry:
    """A registry that sees only what a test puts in place."""
    options: dict[str, object] = {
        "system_dirs": (),
        "pyenv_roots": (),
        "node_roots": (),
        **kwargs,
    }
    return RuntimeRegistry(overrides, search_path=search_path, **options)  # type: ignore[arg-type]


def test_known_runtimes_match_the_botocore_model() -> None:
    model = botocore.session.get_session().get_service_model("lambda")
    assert list(KNOWN_RUNTIMES) == model.shape_for("Runtime").enum


def test_runtime_id_classification() -> None:
    registry = isolated()
    assert registry.is_known("nodejs20.x") and registry.is_supported("nodejs20.x")
    assert registry.is_known("nodejs16.x") and not registry.is_supported("nodejs16.x")
    assert registry.is_known("java21") and not registry.is_supported("java21")
    assert registry.is_known("python3.8") and not registry.is_supported("python3.8")
    assert registry.is_known("python3.14") and registry.is_supported("python3.14")
    assert not registry.is_known("python9.9") and not registry.is_supported("python9.9")
    assert registry.known_runtimes() == KNOWN_RUNTIMES
    python = tuple(f"python3.{minor}" for minor in range(9, 15))
    provided = ("provided", "provided.al2", "provided.al2023")
    expected = (*python, "nodejs18.x", "nodejs20.x", "nodejs22.x", *provided)
    assert registry.supported_runtimes() == SUPPORTED_RUNTIMES == expected


def test_unknown_or_missing_runtimes_resolve_to_none(tmp_path: Path) -> None:
    registry = isolated(search_path=str(tmp_path))
    assert registry.resolve("python3.12") is None
    assert registry.resolve("nodejs20.x") is None
    assert registry.resolve("cobol") is None
    assert registry.available() == {}


def test_resolve_builds_the_bootstrap_command(tmp_path: Path) -> None:
    interpreter = executable(tmp_path / "bin" / "python3.11")
    command = isolated(search_path=str(tmp_path / "bin")).resolve("python3.11")
    assert command is not None
    assert command.argv == [str(interpreter), str(launcher_path())]
    assert (command.runtime_id, command.family, command.version) == (
        "python3.11",
        "python",
        "3.11",
    )
    assert command.interpreter == str(interpreter)
    assert command.execution_env == "AWS_Lambda_python3.11"
    assert launcher_path().is_file() and launcher_path().is_absolute()
    assert bootstrap_path() == launcher_path().with_name("bootstrap.py")
    assert bootstrap_path().is_file()


def test_overrides_win_and_are_resolved(tmp_path: Path) -> None:
    on_path = executable(tmp_path / "bin" / "python3.12")
    custom = executable(tmp_path / "custom" / "interp")
    link = tmp_path / "link-to-interp"
    link.symlink_to(custom)
    registry = isolated(f" python3.12 = {link} ,", search_path=str(on_path.parent))
    assert registry.available() == {"python3.12": str(custom)}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("python3.12", "is not of the form"),
        ("python3.12=", "is not of the form"),
        ("python3.8=/usr/bin/python3", "is not one of"),
        ("python3.12=/nonexistent/python", "is not an executable file"),
    ],
)
def test_bad_overrides_fail_at_construction(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        RuntimeRegistry(text)


def test_path_order_skips_shims_and_non_executables(tmp_path: Path) -> None:
    executable(tmp_path / "pyenv" / "shims" / "python3.10")
    not_executable = tmp_path / "plain" / "python3.10"
    not_executable.parent.mkdir()
    not_executable.write_text("")
    first = executable(tmp_path / "first" / "python3.10")
    executable(tmp_path / "second" / "python3.10")
    search = os.pathsep.join(str(tmp_path / d) for d in ("pyenv/shims", "plain", "first", "second"))
    assert isolated(search_path=search).available() == {"python3.10": str(first)}
    assert isolated(search_path=str(tmp_path / "pyenv" / "shims")).available() == {}


def test_system_dirs_then_pyenv_newest_release(tmp_path: Path) -> None:
    system = executable(tmp_path / "usr" / "bin" / "python3.13")
    root = tmp_path / "pyenv"
    for name in ("3.11.2", "3.11.10t", "3.11.10", "3.11.9", "3.12.1", "system"):
        executable(root / "versions" / name / "bin" / f"python{name[:4]}")
    registry = isolated(system_dirs=[str(tmp_path / "usr" / "bin")], pyenv_roots=[root])
    assert registry.available() == {
        "python3.11": str(root / "versions" / "3.11.10" / "bin" / "python3.11"),
        "python3.12": str(root / "versions" / "3.12.1" / "bin" / "python3.12"),
        "python3.13": str(system),
    }


def test_discovery_runs_once(tmp_path: Path) -> None:
    interpreter = executable(tmp_path / "python3.9")
    registry = isolated(search_path=str(tmp_path))
    assert registry.resolve("python3.9") is not None
    interpreter.unlink()
    assert registry.available() == {"python3.9": str(interpreter)}
