"""How a provisioned concurrency configuration on an alias is split between its versions."""

from __future__ import annotations

from lambdalite.control.provisioning import split


def test_a_plain_alias_or_version_gets_everything() -> None:
    assert split(5, "3", {}) == [("3", 5)]


def test_weighted_alias_splits_by_routing_weight() -> None:
    assert split(10, "1", {"2": 0.3}) == [("1", 7), ("2", 3)]
    assert sum(n for _v, n in split(3, "1", {"2": 0.5})) == 3
    assert split(1, "1", {"2": 0.1}) == [("1", 1), ("2", 0)]
