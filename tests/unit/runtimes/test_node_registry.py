"""Node.js runtimes in the registry: discovery by ``node --version``, version managers, overrides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lambdalite.runtimes import NODE_RUNTIMES, RuntimeRegistry, node_bootstrap_path
from lambdalite.runtimes.nodejs import node_major


def fake_node(path: Path, version: str, calls: Path | None = None) -> Path:
    """A ``node`` that prints ``version`` (and notes each call in ``calls``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    note = f'echo "$0" >> "{calls}"\n' if calls else ""
    path.write_text(f"#!/bin/sh\n{note}echo {version}\n")
    path.chmod(0o755)
    return path


def isolated(search_path: str = "", **kwargs: object) -> RuntimeRegistry:
    """A registry that sees only what a test puts in place."""
    options: dict[str, object] = {
        "system_dirs": (),
        "pyenv_roots": (),
        "node_roots": (),
        **kwargs,
    }
    return RuntimeRegistry(search_path=search_path, **options)  # type: ignore[arg-type]


def test_node_major_reads_the_version(tmp_path: Path) -> None:
    assert node_major(fake_node(tmp_path / "a" / "node", "v22.3.0")) == 22
    assert node_major(fake_node(tmp_path / "b" / "node", "not a version")) is None
    assert node_major(tmp_path / "missing") is None
    failing = tmp_path / "c" / "node"
    failing.parent.mkdir()
    failing.write_text("#!/bin/sh\necho v20.1.0\nexit 3\n")
    failing.chmod(0o755)
    assert node_major(failing) is None


def test_path_binaries_are_matched_by_major(tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"
    first = fake_node(tmp_path / "one" / "node", "v20.11.1", calls)
    fake_node(tmp_path / "two" / "node", "v20.18.0", calls)
    eighteen = fake_node(tmp_path / "two" / "nodejs", "v18.20.4", calls)
    search = os.pathsep.join(str(tmp_path / d) for d in ("one", "two"))
    registry = isolated(search)
    assert registry.available() == {"nodejs18.x": str(eighteen), "nodejs20.x": str(first)}
    assert registry.resolve("nodejs22.x") is None
    # Each binary ran once, however many majors were looked for.
    ran = calls.read_text().split()
    assert sorted(ran) == sorted(set(ran))


def test_version_manager_trees_newest_release_first(tmp_path: Path) -> None:
    nvm = tmp_path / "nvm" / "versions" / "node"
    for version in ("v18.19.0", "v18.20.4", "v22.1.0", "v20.0.0-nightly"):
        fake_node(nvm / version / "bin" / "node", version)
    fnm = tmp_path / "fnm" / "node-versions"
    fake_node(fnm / "v20.9.0" / "installation" / "bin" / "node", "v20.9.0")
    # A directory whose name lies about its version is caught by the version check.
    fake_node(nvm / "v22.9.0" / "bin" / "node", "v21.0.0")
    registry = isolated(node_roots=[nvm, fnm])
    assert registry.available() == {
        "nodejs18.x": str(nvm / "v18.20.4" / "bin" / "node"),
        "nodejs20.x": str(fnm / "v20.9.0" / "installation" / "bin" / "node"),
        "nodejs22.x": str(nvm / "v22.1.0" / "bin" / "node"),
    }


def test_resolve_builds_the_bootstrap_command(tmp_path: Path) -> None:
    node = fake_node(tmp_path / "bin" / "node", "v22.12.0")
    command = isolated(str(tmp_path / "bin")).resolve("nodejs22.x")
    assert command is not None
    assert (command.runtime_id, command.family, command.version) == ("nodejs22.x", "nodejs", "22")
    assert command.interpreter == str(node)
    assert command.argv[0] == str(node) and command.argv[-1] == str(node_bootstrap_path())
    assert "--max-http-header-size=81920" in command.argv
    assert command.execution_env == "AWS_Lambda_nodejs22.x"
    assert node_bootstrap_path().is_file() and node_bootstrap_path().is_absolute()


def test_node_overrides_are_taken_as_given(tmp_path: Path) -> None:
    on_path = fake_node(tmp_path / "bin" / "node", "v18.20.4")
    twenty = fake_node(tmp_path / "custom" / "node20", "v20.11.1")
    registry = isolated(str(on_path.parent), node_overrides=f" nodejs18.x = {twenty} ")
    # The operator's mapping wins even though its major is not 18.
    assert registry.available() == {"nodejs18.x": str(twenty)}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("nodejs20.x", "is not of the form"),
        ("nodejs16.x=/usr/bin/node", "is not one of"),
        ("python3.12=/usr/bin/python3", "is not one of"),
        ("nodejs20.x=/nonexistent/node", "is not an executable file"),
    ],
)
def test_bad_node_overrides_fail_at_construction(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        RuntimeRegistry(node_overrides=text)


def test_python_overrides_do_not_take_node_runtimes() -> None:
    with pytest.raises(ValueError, match="is not one of"):
        RuntimeRegistry("nodejs20.x=/usr/bin/node")


def test_families_are_discovered_separately(tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"
    fake_node(tmp_path / "bin" / "node", "v20.1.0", calls)
    python = tmp_path / "bin" / "python3.12"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    registry = isolated(str(tmp_path / "bin"))
    assert registry.resolve("python3.12") is not None
    assert not calls.exists(), "resolving a Python runtime runs no node"
    assert registry.resolve("nodejs20.x") is not None
    (tmp_path / "bin" / "node").unlink()
    assert registry.resolve("nodejs20.x") is not None, "discovery ran once"
    assert calls.read_text().count("node") == 1


def test_this_hosts_node_if_any() -> None:
    available = {r: p for r, p in RuntimeRegistry().available().items() if r in NODE_RUNTIMES}
    for runtime_id, path in available.items():
        assert node_major(path) == int(runtime_id[len("nodejs") : -len(".x")])
