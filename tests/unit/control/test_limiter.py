"""The concurrency model: account limit, reservations, provisioned capacity, scaling rate."""

from __future__ import annotations

import pytest

from lambdalite.control.limiter import (
    CONCURRENT,
    RATE,
    RESERVED,
    RESERVED_RATE,
    ConcurrencyLimiter,
    TokenBucket,
)
from lambdalite.core.errors import TooManyRequestsException


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def reason(limiter: ConcurrencyLimiter, function: str, **kw: object) -> str:
    with pytest.raises(TooManyRequestsException) as exc, limiter.lease(function, **kw):  # type: ignore[arg-type]
        pass
    return str(exc.value.extra["Reason"])


def test_token_bucket_refills_continuously_up_to_its_capacity() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 10.0, clock)  # one token per second
    assert all(bucket.take() for _ in range(10))
    assert not bucket.take()
    assert bucket.wait_time() == pytest.approx(1.0)
    clock.now += 2.5
    assert bucket.take() and bucket.take() and not bucket.take()
    clock.now += 3600  # unused capacity does not pile up
    assert sum(bucket.take() for _ in range(20)) == 10


def test_scaling_rate_limits_new_environments_only() -> None:
    clock = Clock()
    limiter = ConcurrencyLimiter(1000, scaling_rate=2, scaling_window=10.0, clock=clock)
    with limiter.lease("f", new_environment=True), limiter.lease("f", new_environment=True):
        assert reason(limiter, "f", new_environment=True) == RATE
        # Warm environments need no token; other functions have their own bucket.
        with limiter.lease("f"), limiter.lease("g", new_environment=True):
            pass
    clock.now += 5.0
    with limiter.lease("f", new_environment=True):
        pass
    limiter.reservations["r"] = 10
    for _ in range(2):
        with limiter.lease("r", new_environment=True):
            pass
    with pytest.raises(TooManyRequestsException) as exc, limiter.lease("r", new_environment=True):
        pass
    assert exc.value.extra["Reason"] == RESERVED_RATE
    assert exc.value.headers["Retry-After"] == "5"
    assert limiter.throttles[("f", RATE)] == 1 and limiter.throttles[("r", RESERVED_RATE)] == 1


def test_reservations_cap_and_set_aside_capacity() -> None:
    limiter = ConcurrencyLimiter(account_limit=5)
    limiter.reservations["reserved"] = 2
    assert limiter.unreserved_limit == 3
    with limiter.lease("reserved"), limiter.lease("reserved"):
        assert reason(limiter, "reserved") == RESERVED
        with limiter.lease("a"), limiter.lease("b"), limiter.lease("a"):
            assert reason(limiter, "c") == CONCURRENT
            assert limiter.total_running == 5 and limiter.unreserved_running == 3
    assert limiter.running == {} and limiter.unreserved_running == 0
    limiter.reservations["zero"] = 0
    assert reason(limiter, "zero") == RESERVED


def test_provisioned_capacity_is_served_first_and_counted_where_aws_counts_it() -> None:
    limiter = ConcurrencyLimiter(account_limit=10, scaling_rate=1)
    # Unreserved function: provisioned concurrency is carved out of the unreserved pool.
    limiter.provisioned["p"] = {"live": 2}
    assert limiter.unreserved_limit == 8
    first = limiter.lease("p", "live", new_environment=True)
    with first, limiter.lease("p", "live", new_environment=True):
        # Provisioned environments take no scaling token and no unreserved capacity.
        assert limiter.unreserved_running == 0
        # Beyond it, invocations spill over to on-demand (and need a token).
        with limiter.lease("p", "live", new_environment=True):
            assert limiter.unreserved_running == 1
            assert reason(limiter, "p", qualifier="live", new_environment=True) == RATE
    # Reserved function: provisioned counts against the reservation.
    limiter.reservations["r"] = 3
    limiter.provisioned["r"] = {"1": 2}
    assert limiter.unreserved_limit == 10 - 3 - 2
    with limiter.lease("r", "1"), limiter.lease("r", "1"), limiter.lease("r"):
        assert reason(limiter, "r", qualifier="1") == RESERVED
    limiter.forget("r")
    assert "r" not in limiter.reservations and "r" not in limiter.provisioned
