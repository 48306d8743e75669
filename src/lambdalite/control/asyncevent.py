"""An asynchronous invocation as it waits on the durable queue.

The queue message's payload is the event itself (bytes, untouched); its body is this
record. Everything needed to run the event later is in it, so a server that restarts (or a
different server sharing the database) can deliver it without any in-memory state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from lambdalite.control.recursion import Lineage
from lambdalite.store.base import NewMessage


def queue_name(function: str) -> str:
    """Each function has its own queue, as on Lambda."""
    return f"lambda:{function}"


def function_of(queue: str) -> str:
    return queue.split(":", 1)[1] if queue.startswith("lambda:") else queue


@dataclass(frozen=True)
class AsyncEvent:
    request_id: str
    function: str
    qualifier: str | None  # as invoked: None, "$LATEST", a version or an alias
    invoked_arn: str
    trace_id: str  # carries the lineage
    chain: str
    depth: int
    attempts: int = 0  # invocations that ran and failed
    backoffs: int = 0  # throttles and system errors in a row

    @property
    def lineage(self) -> Lineage:
        return Lineage(self.chain, self.depth)

    def body(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def load(cls, body: dict[str, Any]) -> AsyncEvent:
        return cls(**{k: body[k] for k in cls.__dataclass_fields__ if k in body})

    def failed_attempt(self) -> AsyncEvent:
        return replace(self, attempts=self.attempts + 1, backoffs=0)

    def backed_off(self) -> AsyncEvent:
        return replace(self, backoffs=self.backoffs + 1)

    def message(self, payload: bytes, *, due_at: int = 0) -> NewMessage:
        return NewMessage(queue_name(self.function), self.body(), payload, due_at=due_at)
