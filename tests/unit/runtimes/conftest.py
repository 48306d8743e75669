"""Fixtures for runtime tests: one parametrization per interpreter installed on this host."""

from __future__ import annotations

import pytest

from lambdalite.runtimes import NODE_RUNTIMES, PYTHON_RUNTIMES, RuntimeCommand, RuntimeRegistry

REGISTRY = RuntimeRegistry()
INSTALLED = REGISTRY.available()


def _version_key(runtime_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in runtime_id.removeprefix("python").split("."))


RUNTIME_IDS = sorted((r for r in INSTALLED if r in PYTHON_RUNTIMES), key=_version_key)
NODE_RUNTIME_IDS = [r for r in NODE_RUNTIMES if r in INSTALLED]


@pytest.fixture(params=RUNTIME_IDS)
def runtime(request: pytest.FixtureRequest) -> RuntimeCommand:
    """The command the platform would run, once per installed Python runtime (3.9 and up)."""
    command = REGISTRY.resolve(request.param)
    assert command is not None
    return command


_NO_NODE = pytest.mark.skip(reason="no Node.js 18, 20 or 22 on this host")


@pytest.fixture(params=NODE_RUNTIME_IDS or [pytest.param(None, marks=_NO_NODE)])
def node(request: pytest.FixtureRequest) -> RuntimeCommand:
    """The command the platform would run, once per installed Node.js runtime (18, 20, 22)."""
    command = REGISTRY.resolve(request.param)
    assert command is not None
    return command
