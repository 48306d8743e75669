"""Live figures: concurrency, throttles and the asynchronous queue, per function and account.

Counters (throttles, async outcomes) count since this server started; gauges are read at the
moment of the call. Queue depth and the age of the oldest event come from the store, so they
cover every server sharing it. ``snapshot`` is what ``GET /_lambdalite/stats`` and
``lambdalite stats`` show; ``prometheus`` renders the same figures in the Prometheus text
exposition format for ``GET /_lambdalite/metrics``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from lambdalite.control.asyncevent import function_of
from lambdalite.control.delivery import AsyncDelivery
from lambdalite.control.limiter import ConcurrencyLimiter
from lambdalite.control.provisioning import Provisioning
from lambdalite.store.base import QueueStats


class StatsService:
    def __init__(self, limiter: ConcurrencyLimiter, delivery: AsyncDelivery) -> None:
        self.limiter = limiter
        self.delivery = delivery
        # Set by the control plane: provisioned environments and the init gate.
        self.provisioning: Provisioning | None = None

    async def snapshot(self) -> dict[str, Any]:
        writer = self.delivery.writer
        queues: list[QueueStats] = await writer.call(writer.store.queue_stats)
        return self.build(queues, time.time())

    def build(self, queues: list[QueueStats], now: float) -> dict[str, Any]:
        limiter, figures = self.limiter, self.delivery.figures
        functions: dict[str, dict[str, Any]] = defaultdict(_empty_function)
        for name, count in limiter.running.items():
            functions[name]["concurrentExecutions"] = count
        for name, count in self.delivery.running.items():
            functions[name]["asyncEventsRunning"] = count
        for name, reserved in limiter.reservations.items():
            functions[name]["reservedConcurrency"] = reserved
        for name in limiter.provisioned:
            functions[name]["provisionedConcurrency"] = limiter.provisioned_total(name)
        for (name, reason), count in limiter.throttles.items():
            functions[name]["throttles"][reason] = count
        provisioning = self.provisioning
        if provisioning is not None:
            for name, count in provisioning.environments().items():
                functions[name]["provisionedEnvironments"] = count
        initializing, waiting = provisioning.init_figures() if provisioning else (0, 0)
        oldest_age = 0.0
        depth_total = 0
        for q in queues:
            name = function_of(q.queue)
            age = max(0.0, now - q.oldest_enqueued_at / 1000)
            oldest_age = max(oldest_age, age)
            depth_total += q.depth
            entry = functions[name]
            entry["asyncQueueDepth"] = q.depth
            entry["asyncEventsClaimed"] = q.claimed
            entry["asyncOldestEventAgeSeconds"] = round(age, 3)
        for name, count in figures.received.items():
            functions[name]["asyncEventsReceived"] = count
        for (name, condition), count in figures.outcomes.items():
            functions[name]["asyncOutcomes"][condition] = count
        for (name, kind), count in figures.requeued.items():
            functions[name]["asyncRequeued"][kind] = count
        for name, count in figures.destination_failures.items():
            functions[name]["destinationDeliveryFailures"] = count
        for name, count in figures.dropped.items():
            functions[name]["asyncEventsDropped"] = count
        account = {
            "concurrencyLimit": limiter.account_limit,
            "unreservedConcurrencyLimit": limiter.unreserved_limit,
            "concurrentExecutions": limiter.total_running,
            "unreservedConcurrentExecutions": limiter.unreserved_running,
            "throttles": sum(limiter.throttles.values()),
            "asyncQueueDepth": depth_total,
            "asyncOldestEventAgeSeconds": round(oldest_age, 3),
            "asyncWorkers": self.delivery.workers,
            "asyncEventsRunning": sum(self.delivery.running.values()),
            "asyncQueueCommits": self.delivery.writer.commits,
            "environmentsInitializing": initializing,
            "initsWaiting": waiting,
        }
        return {"account": account, "functions": dict(sorted(functions.items()))}


def _empty_function() -> dict[str, Any]:
    return {
        "concurrentExecutions": 0,
        "asyncEventsRunning": 0,
        "reservedConcurrency": None,
        "provisionedConcurrency": 0,
        "provisionedEnvironments": 0,
        "throttles": {},
        "asyncQueueDepth": 0,
        "asyncEventsClaimed": 0,
        "asyncOldestEventAgeSeconds": 0.0,
        "asyncEventsReceived": 0,
        "asyncOutcomes": {},
        "asyncRequeued": {},
        "destinationDeliveryFailures": 0,
        "asyncEventsDropped": 0,
    }


# -- Prometheus text format ---------------------------------------------------------------

_ACCOUNT = (
    ("concurrencyLimit", "account_concurrency_limit", "gauge", "Account concurrency limit."),
    (
        "unreservedConcurrencyLimit",
        "unreserved_concurrency_limit",
        "gauge",
        "Concurrency left to functions without a reservation.",
    ),
    ("concurrentExecutions", "account_concurrent_executions", "gauge", "Invocations running."),
    (
        "unreservedConcurrentExecutions",
        "unreserved_concurrent_executions",
        "gauge",
        "Invocations running in the unreserved pool.",
    ),
    ("asyncQueueDepth", "account_async_queue_depth", "gauge", "Asynchronous events queued."),
    (
        "asyncOldestEventAgeSeconds",
        "account_async_oldest_event_age_seconds",
        "gauge",
        "Age of the oldest queued asynchronous event.",
    ),
    ("asyncWorkers", "async_workers", "gauge", "Asynchronous events this server runs at once."),
    (
        "environmentsInitializing",
        "environments_initializing",
        "gauge",
        "Execution environments in INIT (at most the init gate's capacity).",
    ),
    ("initsWaiting", "inits_waiting", "gauge", "Invocations waiting for an init slot."),
)
_FUNCTION = (
    ("concurrentExecutions", "concurrent_executions", "gauge", "Invocations running."),
    ("asyncEventsRunning", "async_events_running", "gauge", "Asynchronous events running."),
    ("reservedConcurrency", "reserved_concurrency", "gauge", "Reserved concurrency."),
    ("provisionedConcurrency", "provisioned_concurrency", "gauge", "Provisioned concurrency."),
    (
        "provisionedEnvironments",
        "provisioned_environments",
        "gauge",
        "Provisioned environments initialized and alive.",
    ),
    ("asyncQueueDepth", "async_queue_depth", "gauge", "Asynchronous events queued."),
    ("asyncEventsClaimed", "async_events_claimed", "gauge", "Queued events under a lease."),
    (
        "asyncOldestEventAgeSeconds",
        "async_oldest_event_age_seconds",
        "gauge",
        "Age of the oldest queued asynchronous event.",
    ),
    (
        "asyncEventsReceived",
        "async_events_received_total",
        "counter",
        "Asynchronous events accepted.",
    ),
    (
        "destinationDeliveryFailures",
        "destination_delivery_failures_total",
        "counter",
        "Invocation records or dead letters that could not be delivered.",
    ),
    (
        "asyncEventsDropped",
        "async_events_dropped_total",
        "counter",
        "Events discarded because their function no longer exists.",
    ),
)
_LABELLED = (
    ("throttles", "throttles_total", "reason", "Invocations refused with 429, by Reason."),
    ("asyncOutcomes", "async_events_completed_total", "condition", "Finished async events."),
    ("asyncRequeued", "async_events_requeued_total", "kind", "Async events sent back to wait."),
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float | int) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def prometheus(snapshot: dict[str, Any]) -> str:
    lines: list[str] = []

    def family(name: str, kind: str, text: str) -> None:
        lines.append(f"# HELP lambdalite_{name} {text}")
        lines.append(f"# TYPE lambdalite_{name} {kind}")

    account = snapshot["account"]
    for key, name, kind, text in _ACCOUNT:
        family(name, kind, text)
        lines.append(f"lambdalite_{name} {_number(account[key])}")
    functions: dict[str, dict[str, Any]] = snapshot["functions"]
    for key, name, kind, text in _FUNCTION:
        family(name, kind, text)
        for fn, figures in functions.items():
            if figures[key] is not None:
                lines.append(
                    f'lambdalite_{name}{{function="{_escape(fn)}"}} {_number(figures[key])}'
                )
    for key, name, label, text in _LABELLED:
        family(name, "counter", text)
        for fn, figures in functions.items():
            for value, count in sorted(figures[key].items()):
                lines.append(
                    f'lambdalite_{name}{{function="{_escape(fn)}",{label}="{_escape(value)}"}} '
                    f"{_number(count)}"
                )
    return "\n".join(lines) + "\n"
