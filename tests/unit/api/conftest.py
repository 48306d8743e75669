"""Service specs are built once per test session: loading a model takes a fraction of a second."""

from __future__ import annotations

import pytest

from lambdalite.api.spec import ServiceSpec


@pytest.fixture(scope="session")
def lambda_spec() -> ServiceSpec:
    return ServiceSpec.load("lambda")


@pytest.fixture(scope="session")
def logs_spec() -> ServiceSpec:
    return ServiceSpec.load("logs")
