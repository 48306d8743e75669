"""Reserved concurrency, the account limit, and the leases that enforce them.

Counting happens here, in one process, before an invocation reaches the environment pools:
a function with a reservation may run up to that many invocations at once, and everything
without one shares what the reservations leave of the account limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lambdalite.control.deps import Deps
from lambdalite.core.arn import parse_function
from lambdalite.core.errors import InvalidParameterValueException, TooManyRequestsException

CONCURRENT = "ConcurrentInvocationLimitExceeded"
RESERVED = "ReservedFunctionConcurrentInvocationLimitExceeded"


class ConcurrencyLimiter:
    def __init__(self, account_limit: int) -> None:
        self.account_limit = account_limit
        self.reservations: dict[str, int] = {}
        self.running: dict[str, int] = {}
        self.unreserved_running = 0

    @property
    def unreserved_limit(self) -> int:
        return self.account_limit - sum(self.reservations.values())

    def in_flight(self, function: str) -> int:
        return self.running.get(function, 0)

    @contextmanager
    def lease(self, function: str) -> Iterator[None]:
        """Hold one unit of concurrency for ``function`` or raise the throttle AWS raises."""
        reserved = self.reservations.get(function)
        running = self.running.get(function, 0)
        if reserved is not None:
            if running >= reserved:
                raise TooManyRequestsException("Rate Exceeded.", RESERVED)
        elif self.unreserved_running >= self.unreserved_limit:
            raise TooManyRequestsException("Rate Exceeded.", CONCURRENT)
        self.running[function] = running + 1
        if reserved is None:
            self.unreserved_running += 1
        try:
            yield
        finally:
            left = self.running[function] - 1
            if left:
                self.running[function] = left
            else:
                del self.running[function]
            if reserved is None:
                self.unreserved_running -= 1


class ConcurrencyService:
    def __init__(self, deps: Deps, limiter: ConcurrencyLimiter) -> None:
        self.deps = deps
        self.catalog = deps.catalog
        self.limiter = limiter

    def load(self) -> None:
        """Rebuild the limiter's reservations from the store at start-up."""
        for doc in self.catalog.functions():
            if doc.data.get("reserved") is not None:
                self.limiter.reservations[doc.key] = int(doc.data["reserved"])

    def _function(self, identifier: str) -> Any:
        ref = parse_function(identifier)
        self.deps.arns.check_ref(ref)
        if ref.qualifier is not None:
            raise InvalidParameterValueException(
                "Reserved concurrency is set on the function, not on a version or alias."
            )
        return self.catalog.function(ref.name)

    async def put_function_concurrency(self, params: dict[str, Any]) -> dict[str, Any]:
        doc = self._function(params["FunctionName"])
        wanted = int(params["ReservedConcurrentExecutions"])
        others = sum(v for k, v in self.limiter.reservations.items() if k != doc.key)
        minimum = self.deps.settings.unreserved_concurrency_min
        if self.limiter.account_limit - others - wanted < minimum:
            raise InvalidParameterValueException(
                "Specified ReservedConcurrentExecutions for function decreases account's "
                f"UnreservedConcurrentExecution below its minimum value of [{minimum}]."
            )
        self.catalog.update_function(doc, dict(doc.data, reserved=wanted))
        self.limiter.reservations[doc.key] = wanted
        return {"ReservedConcurrentExecutions": wanted}

    async def get_function_concurrency(self, params: dict[str, Any]) -> dict[str, Any]:
        doc = self._function(params["FunctionName"])
        reserved = doc.data.get("reserved")
        return {} if reserved is None else {"ReservedConcurrentExecutions": reserved}

    async def delete_function_concurrency(self, params: dict[str, Any]) -> dict[str, Any]:
        doc = self._function(params["FunctionName"])
        self.catalog.update_function(doc, dict(doc.data, reserved=None))
        self.limiter.reservations.pop(doc.key, None)
        return {}

    def forget(self, function: str) -> None:
        self.limiter.reservations.pop(function, None)

    async def get_account_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        functions = self.catalog.functions()
        total = 0
        for doc in functions:
            total += doc.data["code"]["size"]
            total += sum(v.data["code"]["size"] for v in self.catalog.versions(doc.key))
        return {
            "AccountLimit": {
                "TotalCodeSize": 80530636800,
                "CodeSizeUnzipped": 262144000,
                "CodeSizeZipped": 52428800,
                "ConcurrentExecutions": self.limiter.account_limit,
                "UnreservedConcurrentExecutions": self.limiter.unreserved_limit,
            },
            "AccountUsage": {"TotalCodeSize": total, "FunctionCount": len(functions)},
        }
