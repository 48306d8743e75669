"""``lambdalite logs NAME [--follow]``: a function's log group, read through CloudWatch Logs."""

from __future__ import annotations

import argparse
import re
import time
from typing import Any

from lambdalite.client import make_client

_SINCE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def register(commands: Any) -> list[argparse.ArgumentParser]:
    logs = commands.add_parser("logs", help="print a function's logs")
    logs.add_argument("name")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    logs.add_argument("--since", default="1h", help="how far back to start, e.g. 10m, 2h, 1d")
    logs.add_argument("--poll", type=float, default=0.5, help=argparse.SUPPRESS)
    logs.set_defaults(run=run_logs)
    return [logs]


def run_logs(args: argparse.Namespace) -> int:
    m = _SINCE.match(args.since)
    if not m:
        raise SystemExit("lambdalite: --since takes a number and a unit, e.g. 10m")
    start = int((time.time() - int(m.group(1)) * _UNITS[m.group(2)]) * 1000)
    client = make_client("logs", args.endpoint_url, args.region)
    group = f"/aws/lambda/{args.name}"
    # Events at the newest timestamp already printed; the next poll starts at that timestamp.
    seen: set[str] = set()
    while True:
        events = _fetch(client, group, start, args.follow)
        if events is None:
            print(f"no logs for {args.name} yet")
            return 0
        for event in events:
            if event["eventId"] not in seen:
                print(event["message"].rstrip("\n"), flush=True)
        if events:
            start = max(e["timestamp"] for e in events)
            seen = {e["eventId"] for e in events if e["timestamp"] == start}
        if not args.follow:
            return 0
        time.sleep(args.poll)


def _fetch(client: Any, group: str, start: int, follow: bool) -> list[dict[str, Any]] | None:
    """All events since ``start``; None when the group does not exist and we are not following."""
    events: list[dict[str, Any]] = []
    request: dict[str, Any] = {"logGroupName": group, "startTime": start}
    while True:
        try:
            page = client.filter_log_events(**request)
        except client.exceptions.ResourceNotFoundException:
            return [] if follow else None
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        request["nextToken"] = page["nextToken"]
