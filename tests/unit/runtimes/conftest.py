"""Fixtures for runtime tests: one parametrization per interpreter installed on this host."""

from __future__ import annotations

import pytest

from lambdalite.runtimes import RuntimeCommand, RuntimeRegistry

REGISTRY = RuntimeRegistry()
INSTALLED = REGISTRY.available()


def _version_key(runtime_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in runtime_id.removeprefix("python").split("."))


RUNTIME_IDS = sorted(INSTALLED, key=_version_key)


@pytest.fixture(params=RUNTIME_IDS)
def runtime(request: pytest.FixtureRequest) -> RuntimeCommand:
    """The command the platform would run, once per installed Python runtime (3.9 and up)."""
    command = REGISTRY.resolve(request.param)
    assert command is not None
    return command
