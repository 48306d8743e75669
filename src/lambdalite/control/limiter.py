"""Lambda's concurrency model, counted in one process before an invocation reaches a pool.

* The **account limit** caps everything running at once.
* A **reservation** (PutFunctionConcurrency) caps one function and sets that capacity aside:
  the functions without one share the **unreserved pool**, which is what reservations and the
  provisioned concurrency of unreserved functions leave of the account limit.
* **Provisioned concurrency** (per version or alias) is served first; it counts against the
  function's reservation if it has one, otherwise it is carved out of the unreserved pool.
  Beyond it, invocations spill over to on-demand capacity.
* The **scaling rate** limits how fast a function gains execution environments: a token
  bucket of ``scaling_rate`` new environments, refilled continuously over ``scaling_window``
  seconds, so bursts are allowed and unused capacity does not pile up beyond the bucket.
  Reusing a warm environment takes no token.

Every refusal is the 429 ``TooManyRequestsException`` AWS sends, with the ``Reason`` naming
the limit, and is counted per function and reason for the live figures.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from lambdalite.core.errors import TooManyRequestsException

# What ``acquire`` took: the (function, qualifier) slot, whether it counts against the
# unreserved pool, whether it is a provisioned unit.
Lease = tuple[tuple[str, str], bool, bool]

CONCURRENT = "ConcurrentInvocationLimitExceeded"
RESERVED = "ReservedFunctionConcurrentInvocationLimitExceeded"
RATE = "FunctionInvocationRateLimitExceeded"
RESERVED_RATE = "ReservedFunctionInvocationRateLimitExceeded"

DEFAULT_SCALING_RATE = 1000
DEFAULT_SCALING_WINDOW = 10.0


class TokenBucket:
    """``capacity`` tokens, refilled at ``capacity / window`` per second, never above it."""

    def __init__(self, capacity: int, window: float, clock: Callable[[], float]) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / window if window > 0 else math.inf
        self._clock = clock
        self._tokens = float(capacity)
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def take(self) -> bool:
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until the next token."""
        self._refill()
        if self._tokens >= 1.0 or self.rate == math.inf:
            return 0.0
        return (1.0 - self._tokens) / self.rate


class ConcurrencyLimiter:
    def __init__(
        self,
        account_limit: int,
        *,
        scaling_rate: int = DEFAULT_SCALING_RATE,
        scaling_window: float = DEFAULT_SCALING_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account_limit = account_limit
        self.scaling_rate = scaling_rate
        self.scaling_window = scaling_window
        self.reservations: dict[str, int] = {}
        # function → qualifier (version or alias) → provisioned environments
        self.provisioned: dict[str, dict[str, int]] = {}
        self.running: dict[str, int] = {}
        self.running_provisioned: dict[tuple[str, str], int] = {}
        self.unreserved_running = 0
        self.throttles: Counter[tuple[str, str]] = Counter()
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    # -- figures ----------------------------------------------------------------------------
    def provisioned_total(self, function: str) -> int:
        return sum(self.provisioned.get(function, {}).values())

    @property
    def unreserved_limit(self) -> int:
        """What reservations and unreserved functions' provisioned concurrency leave."""
        reserved = sum(self.reservations.values())
        carved = sum(
            self.provisioned_total(f) for f in self.provisioned if f not in self.reservations
        )
        return self.account_limit - reserved - carved

    @property
    def total_running(self) -> int:
        return sum(self.running.values())

    def in_flight(self, function: str) -> int:
        return self.running.get(function, 0)

    def forget(self, function: str) -> None:
        """Drop a deleted function's reservation, provisioned capacity and bucket."""
        self.reservations.pop(function, None)
        self.provisioned.pop(function, None)
        self._buckets.pop(function, None)

    # -- admission ------------------------------------------------------------------------
    def _throttle(self, function: str, reason: str, retry_after: int | None = None) -> None:
        self.throttles[(function, reason)] += 1
        raise TooManyRequestsException("Rate Exceeded.", reason, retry_after)

    def _bucket(self, function: str) -> TokenBucket:
        bucket = self._buckets.get(function)
        if bucket is None:
            bucket = TokenBucket(self.scaling_rate, self.scaling_window, self._clock)
            self._buckets[function] = bucket
        return bucket

    @contextmanager
    def lease(
        self, function: str, qualifier: str | None = None, *, new_environment: bool = False
    ) -> Iterator[None]:
        """Hold one unit of concurrency for ``function`` or raise the throttle AWS raises.

        ``qualifier`` is the version or alias invoked (for provisioned concurrency);
        ``new_environment`` says the invocation would start an environment, which the
        scaling rate limits.
        """
        held = self.acquire(function, qualifier, new_environment=new_environment)
        try:
            yield
        finally:
            self.release(held)

    def acquire(
        self, function: str, qualifier: str | None = None, *, new_environment: bool = False
    ) -> Lease:
        """``lease`` without the context manager, for the invoke path: every ``acquire``
        that returns must be followed by one ``release`` of what it returned."""
        reserved = self.reservations.get(function)
        running = self.running.get(function, 0)
        slot = (function, qualifier or "")
        provisioned = self.provisioned.get(function, {}).get(qualifier or "", 0)
        use_provisioned = self.running_provisioned.get(slot, 0) < provisioned
        if reserved is not None:
            if running >= reserved:
                self._throttle(function, RESERVED)
        elif not use_provisioned and self.unreserved_running >= self.unreserved_limit:
            self._throttle(function, CONCURRENT)
        if new_environment and not use_provisioned:
            bucket = self._bucket(function)
            if not bucket.take():
                reason = RESERVED_RATE if reserved is not None else RATE
                self._throttle(function, reason, max(1, math.ceil(bucket.wait_time())))
        self.running[function] = running + 1
        shared = reserved is None and not use_provisioned
        if shared:
            self.unreserved_running += 1
        if use_provisioned:
            self.running_provisioned[slot] = self.running_provisioned.get(slot, 0) + 1
        return (slot, shared, use_provisioned)

    def release(self, held: Lease) -> None:
        slot, shared, use_provisioned = held
        function = slot[0]
        left = self.running[function] - 1
        if left:
            self.running[function] = left
        else:
            del self.running[function]
        if shared:
            self.unreserved_running -= 1
        if use_provisioned:
            count = self.running_provisioned[slot] - 1
            if count:
                self.running_provisioned[slot] = count
            else:
                del self.running_provisioned[slot]
