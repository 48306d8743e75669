"""Pure rules of the control plane: routing weights, pagination, limits, concurrency."""

from __future__ import annotations

import random

import pytest

from lambdalite.control.aliases import pick_version
from lambdalite.control.concurrency import ConcurrencyLimiter
from lambdalite.control.limits import check_environment, check_sizes
from lambdalite.control.paging import paginate
from lambdalite.core.errors import InvalidParameterValueException, TooManyRequestsException


def test_pick_version_follows_weights() -> None:
    rng = random.Random(7)
    alias = {"FunctionVersion": "1", "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.25}}}
    picks = [pick_version(alias, rng) for _ in range(20000)]
    assert abs(picks.count("2") / len(picks) - 0.25) < 0.02
    assert pick_version({"FunctionVersion": "3"}, rng) == "3"
    full = {"FunctionVersion": "1", "RoutingConfig": {"AdditionalVersionWeights": {"2": 1.0}}}
    assert {pick_version(full, rng) for _ in range(100)} == {"2"}


def test_paginate_walks_every_item_once() -> None:
    items = list(range(7))
    seen, marker = [], None
    while True:
        page, marker = paginate(items, marker, 3, 50)
        seen += page
        if marker is None:
            break
    assert seen == items
    assert paginate(items, None, None, 5)[0] == [0, 1, 2, 3, 4]
    with pytest.raises(InvalidParameterValueException):
        paginate(items, "not-a-marker!", None, 50)


def test_limits() -> None:
    check_sizes({"MemorySize": 10240, "Timeout": 900, "EphemeralStorage": {"Size": 10240}})
    for bad in ({"MemorySize": 10241}, {"Timeout": 901}, {"EphemeralStorage": {"Size": 10241}}):
        with pytest.raises(InvalidParameterValueException):
            check_sizes(bad)
    check_environment({"A_B": "x" * 4000})
    with pytest.raises(InvalidParameterValueException) as exc:
        check_environment({"A": "x" * 4096})
    assert "exceeded the 4KB limit" in exc.value.message
    with pytest.raises(InvalidParameterValueException) as exc:
        check_environment({"AWS_REGION": "x", "_HANDLER": "y"})
    assert exc.value.message.endswith("Reserved keys used in this request: AWS_REGION, _HANDLER")


def test_concurrency_limiter() -> None:
    limiter = ConcurrencyLimiter(account_limit=3)
    limiter.reservations["reserved"] = 1
    with limiter.lease("reserved"):
        with pytest.raises(TooManyRequestsException) as exc, limiter.lease("reserved"):
            pass
        assert exc.value.extra["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        with limiter.lease("a"), limiter.lease("b"):
            with pytest.raises(TooManyRequestsException) as exc, limiter.lease("c"):
                pass
            assert exc.value.extra["Reason"] == "ConcurrentInvocationLimitExceeded"
    assert limiter.running == {} and limiter.unreserved_running == 0
    limiter.reservations["zero"] = 0
    with pytest.raises(TooManyRequestsException), limiter.lease("zero"):
        pass
