"""Recursive loop detection: how many invocations deep a chain of requests is.

The depth travels in the X-Ray trace header as a ``Lineage=<hash>:<count>`` field, the way
Lambda annotates it: the platform hands each invocation a trace header carrying its depth
(``Lambda-Runtime-Trace-Id``, which runtimes expose as ``_X_AMZN_TRACE_ID``), AWS SDKs copy
that variable into the ``X-Amzn-Trace-Id`` header of every call a function makes, and an
Invoke arriving with it continues the count. An invocation deeper than ``MAX_DEPTH`` is
stopped unless the function's recursion config is ``Allow``: a synchronous caller gets
``RecursiveInvocationException``, an asynchronous event goes to the failure destination.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

from lambdalite.control.deps import Deps
from lambdalite.core.arn import parse_function
from lambdalite.core.errors import InvalidParameterValueException

MAX_DEPTH = 16
ALLOW, TERMINATE = "Allow", "Terminate"

_LINEAGE = re.compile(r"^\s*Lineage=(?:\d+:)?([0-9a-fA-F]{1,16}):(\d{1,9})\s*$")


@dataclass(frozen=True)
class Lineage:
    """Where an invocation sits in a chain: the chain's id and this invocation's depth."""

    chain: str
    depth: int

    def trace(self, trace_id: str) -> str:
        """``trace_id`` with this lineage in place of any it carried."""
        fields = [f for f in trace_id.split(";") if f and not f.strip().startswith("Lineage=")]
        return ";".join([*fields, f"Lineage={self.chain}:{self.depth}"])

    def next(self) -> Lineage:
        return Lineage(self.chain, self.depth + 1)


def lineage_of(trace_id: str | None, function_arn: str) -> Lineage:
    """The lineage of an invocation started by a request carrying ``trace_id``.

    Without a lineage the request starts a chain (depth 1) named after the function it
    invokes; with one, the invocation is one hop deeper than the caller.
    """
    for field in (trace_id or "").split(";"):
        m = _LINEAGE.match(field)
        if m:
            return Lineage(m.group(1).lower(), int(m.group(2)) + 1)
    return Lineage(f"{zlib.crc32(function_arn.encode()):08x}", 1)


def too_deep(lineage: Lineage, recursion: str) -> bool:
    return lineage.depth > MAX_DEPTH and recursion != ALLOW


class RecursionService:
    """Get/PutFunctionRecursionConfig; the setting lives in the function document."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.catalog = deps.catalog

    def recursion(self, name: str) -> str:
        doc = self.catalog.find_function(name)
        return TERMINATE if doc is None else str(doc.data.get("recursion") or TERMINATE)

    def _function(self, identifier: str) -> Any:
        ref = parse_function(identifier)
        self.deps.arns.check_ref(ref)
        if ref.qualifier is not None:
            raise InvalidParameterValueException(
                "The recursion config applies to the function, not to a version or alias."
            )
        return self.catalog.function(ref.name)

    async def get_function_recursion_config(self, params: dict[str, Any]) -> dict[str, Any]:
        doc = self._function(params["FunctionName"])
        return {"RecursiveLoop": doc.data.get("recursion") or TERMINATE}

    async def put_function_recursion_config(self, params: dict[str, Any]) -> dict[str, Any]:
        doc = self._function(params["FunctionName"])
        value = params["RecursiveLoop"]
        self.catalog.update_function(doc, dict(doc.data, recursion=value))
        return {"RecursiveLoop": value}
