"""SnapStart rules of the control plane: supported runtimes, validation, rendering, states."""

from __future__ import annotations

from typing import Any

import pytest

from lambdalite.control.catalog import Resolved
from lambdalite.control.snapstart import STATE, check_config, render, supports_snapstart
from lambdalite.core.errors import InvalidParameterValueException
from lambdalite.store.base import Document


@pytest.mark.parametrize(
    ("runtime", "supported"),
    [
        ("python3.12", True),
        ("python3.14", True),
        ("python3.11", False),
        ("python3.9", False),
        ("java11", True),
        ("java21", True),
        ("java8.al2", False),
        ("dotnet8", True),
        ("dotnet6", False),
        ("nodejs22.x", False),
        ("provided.al2023", False),
    ],
)
def test_supported_runtimes(runtime: str, supported: bool) -> None:
    assert supports_snapstart(runtime) is supported


def test_check_config_names_the_runtime() -> None:
    check_config({"Runtime": "python3.12", "SnapStart": {"ApplyOn": "PublishedVersions"}})
    check_config({"Runtime": "nodejs22.x", "SnapStart": {"ApplyOn": "None"}})
    with pytest.raises(InvalidParameterValueException) as info:
        check_config({"Runtime": "nodejs22.x", "SnapStart": {"ApplyOn": "PublishedVersions"}})
    assert info.value.message == "nodejs22.x is not supported for SnapStart enabled functions."


def _resolved(version: str, config: dict[str, Any]) -> Resolved:
    doc = Document(kind="function", key="f", parent="", data={}, revision="r")
    return Resolved(doc, version, config, {}, "r")


def test_render_turns_optimization_on_for_published_versions_only() -> None:
    config = {"SnapStart": {"ApplyOn": "PublishedVersions"}}
    latest: dict[str, Any] = {"State": "Active"}
    render(latest, _resolved("$LATEST", config))
    assert latest["SnapStart"] == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "Off"}
    version: dict[str, Any] = {"State": "Active"}
    render(version, _resolved("3", config))
    assert version["SnapStart"]["OptimizationStatus"] == "On"
    plain: dict[str, Any] = {}
    render(plain, _resolved("3", {}))
    assert plain["SnapStart"] == {"ApplyOn": "None", "OptimizationStatus": "Off"}


def test_render_shows_the_snapshot_state() -> None:
    failed = {
        "SnapStart": {"ApplyOn": "PublishedVersions"},
        STATE: {"State": "Failed", "StateReason": "boom", "StateReasonCode": "FunctionError"},
    }
    out: dict[str, Any] = {"State": "Active"}
    render(out, _resolved("2", failed))
    assert (out["State"], out["StateReason"], out["StateReasonCode"]) == (
        "Failed",
        "boom",
        "FunctionError",
    )
