"""Which backend a server gets for its settings, and what it says about it."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from lambdalite.config import Settings
from lambdalite.sandbox.namespace import NamespaceSandboxBackend
from lambdalite.sandbox.process import ProcessSandboxBackend
from lambdalite.sandbox.selection import SandboxUnavailable, choose_backend

from .conftest import namespace_problem


def settings(tmp_path: Path, **values: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", **values)  # type: ignore[arg-type]


def close(backend: ProcessSandboxBackend) -> None:
    asyncio.run(backend.close())


def test_invalid_combinations_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sandbox must be one of"):
        choose_backend(settings(tmp_path, sandbox="docker"))
    with pytest.raises(ValueError, match="network_mode must be one of"):
        choose_backend(settings(tmp_path, network_mode="bridge"))
    with pytest.raises(ValueError, match="isolated needs sandbox=namespace"):
        choose_backend(settings(tmp_path, sandbox="process", network_mode="isolated"))


def test_process_backend_says_how_weak_it_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="lambdalite.sandbox"):
        backend = choose_backend(settings(tmp_path, sandbox="process"))
    assert type(backend) is ProcessSandboxBackend
    assert (
        "process sandbox" in caplog.text and "see its files, processes and network" in caplog.text
    )
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    close(backend)


def test_auto_prefers_namespaces_and_falls_back_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="lambdalite.sandbox"):
        backend = choose_backend(settings(tmp_path))
    if namespace_problem() is None:
        assert isinstance(backend, NamespaceSandboxBackend)
        assert "namespace sandbox" in caplog.text and "host network" in caplog.text
        assert (tmp_path / "data" / "sandbox" / "root").is_dir()
    else:
        assert type(backend) is ProcessSandboxBackend
        assert "namespace sandboxes unavailable here" in caplog.text
    close(backend)


def test_asking_for_namespaces_where_there_are_none_fails(tmp_path: Path) -> None:
    if namespace_problem() is None:
        backend = choose_backend(settings(tmp_path, sandbox="namespace", network_mode="isolated"))
        assert backend.runtime_api_address == "127.0.0.1:9001"
        assert "own network namespace" in backend.isolation
        close(backend)
        return
    assert os.geteuid() != 0 or namespace_problem()
    for values in ({"sandbox": "namespace"}, {"network_mode": "isolated"}):
        with pytest.raises(SandboxUnavailable):
            choose_backend(settings(tmp_path, **values))


def test_unavailable_namespaces_fall_back_or_fail_by_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A data directory nobody can create makes namespace sandboxes unavailable, root or not.
    broken = Settings(data_dir=Path("/proc/no-such-dir/data"))
    with caplog.at_level(logging.INFO, logger="lambdalite.sandbox"):
        backend = choose_backend(broken)
    assert type(backend) is ProcessSandboxBackend
    assert "namespace sandboxes unavailable here" in caplog.text
    assert "functions run as this server's user" in caplog.text
    close(backend)
    for values in ({"sandbox": "namespace"}, {"network_mode": "isolated"}):
        with pytest.raises(SandboxUnavailable, match="namespace sandboxes unavailable"):
            choose_backend(Settings(data_dir=broken.data_dir, **values))  # type: ignore[arg-type]
