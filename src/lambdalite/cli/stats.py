"""``lambdalite stats``: live concurrency, throttles and async queue figures of a server."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import httpx

COLUMNS = (
    ("FUNCTION", None),
    ("RUNNING", "concurrentExecutions"),
    ("RESERVED", "reservedConcurrency"),
    ("PROVISIONED", "provisionedConcurrency"),
    ("THROTTLES", "throttles"),
    ("QUEUED", "asyncQueueDepth"),
    ("OLDEST_S", "asyncOldestEventAgeSeconds"),
    ("RECEIVED", "asyncEventsReceived"),
    ("SUCCEEDED", "succeeded"),
    ("FAILED", "failed"),
)


def register(commands: Any) -> list[argparse.ArgumentParser]:
    stats = commands.add_parser(
        "stats", help="show concurrency, throttles and the async queue, per function"
    )
    stats.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    stats.add_argument("--function", help="only this function")
    stats.add_argument("--watch", type=float, metavar="SECONDS", help="refresh every SECONDS")
    stats.set_defaults(run=run_stats)
    return [stats]


def fetch(endpoint: str) -> dict[str, Any]:
    response = httpx.get(f"{endpoint.rstrip('/')}/_lambdalite/stats", timeout=10)
    response.raise_for_status()
    figures: dict[str, Any] = response.json()
    return figures


def _cell(figures: dict[str, Any], key: str | None, name: str) -> str:
    if key is None:
        return name
    if key == "throttles":
        return str(sum(figures["throttles"].values()))
    if key == "succeeded":
        return str(figures["asyncOutcomes"].get("Success", 0))
    if key == "failed":
        outcomes = figures["asyncOutcomes"]
        return str(sum(n for condition, n in outcomes.items() if condition != "Success"))
    value = figures[key]
    return "-" if value is None else str(value)


def render(snapshot: dict[str, Any], only: str | None = None) -> str:
    a = snapshot["account"]
    lines = [
        f"account: {a['concurrentExecutions']}/{a['concurrencyLimit']} running "
        f"(unreserved {a['unreservedConcurrentExecutions']}/{a['unreservedConcurrencyLimit']}), "
        f"{a['throttles']} throttled, {a['asyncQueueDepth']} async events queued "
        f"(oldest {a['asyncOldestEventAgeSeconds']:.1f} s), "
        f"{a['asyncEventsRunning']}/{a['asyncWorkers']} async workers busy"
    ]
    rows = [[title for title, _ in COLUMNS]]
    for name, figures in snapshot["functions"].items():
        if only is None or name == only:
            rows.append([_cell(figures, key, name) for _, key in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    for row in rows:
        lines.append(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    for name, figures in snapshot["functions"].items():
        if (only is None or name == only) and figures["throttles"]:
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(figures["throttles"].items()))
            lines.append(f"{name} throttles: {reasons}")
    return "\n".join(lines)


def run_stats(args: argparse.Namespace) -> int:
    while True:
        snapshot = fetch(args.endpoint_url)
        if args.json:
            if args.function:
                snapshot["functions"] = {
                    k: v for k, v in snapshot["functions"].items() if k == args.function
                }
            print(json.dumps(snapshot, indent=2), flush=True)
        else:
            print(render(snapshot, args.function), flush=True)
        if not args.watch:
            return 0
        time.sleep(args.watch)
        print(flush=True)
