"""The CloudWatch Logs operations that read function logs (awsJson1.1 ``Logs_20140328``).

Served on the same port as the Lambda API, so ``aws logs`` and boto3's ``logs`` client work
against lambdalite with the same ``--endpoint-url``.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from lambdalite.core.errors import InvalidParameterValueException, ResourceNotFoundException
from lambdalite.store.base import LogEvent, Store


class LogsNotFound(ResourceNotFoundException):
    status = 400


def _terms(pattern: str | None) -> list[str]:
    """Plain-term filter patterns: every term (quoted phrases allowed) must occur."""
    if not pattern or not pattern.strip():
        return []
    try:
        return [t for t in shlex.split(pattern) if t]
    except ValueError:
        return pattern.split()


def _token_id(token: str | None, prefix: str) -> int | None:
    if not token:
        return None
    m = re.fullmatch(rf"{prefix}/(\d+)", token)
    if not m:
        raise InvalidParameterValueException("The specified nextToken is invalid.")
    return int(m.group(1))


class LogsService:
    def __init__(self, store: Store, region: str, account: str) -> None:
        self.store = store
        self.region = region
        self.account = account

    def _group_arn(self, group: str) -> str:
        return f"arn:aws:logs:{self.region}:{self.account}:log-group:{group}"

    def _require_group(self, group: str) -> None:
        if group not in self.store.list_log_groups(group):
            raise LogsNotFound("The specified log group does not exist.")

    async def describe_log_groups(self, params: dict[str, Any]) -> dict[str, Any]:
        groups = self.store.list_log_groups(params.get("logGroupNamePrefix") or "")
        out = []
        for group in groups:
            streams = self.store.list_log_streams(group)
            out.append(
                {
                    "logGroupName": group,
                    "creationTime": min((s.first_event for s in streams), default=0),
                    "metricFilterCount": 0,
                    "arn": self._group_arn(group) + ":*",
                    "storedBytes": sum(s.stored_bytes for s in streams),
                    "logGroupClass": "STANDARD",
                    "logGroupArn": self._group_arn(group),
                }
            )
        return {"logGroups": out[: params.get("limit") or 50]}

    async def describe_log_streams(self, params: dict[str, Any]) -> dict[str, Any]:
        group = params["logGroupName"]
        self._require_group(group)
        streams = self.store.list_log_streams(group, params.get("logStreamNamePrefix") or "")
        if params.get("orderBy") == "LastEventTime":
            streams.sort(key=lambda s: s.last_event)
        if params.get("descending"):
            streams.reverse()
        out = [
            {
                "logStreamName": s.stream,
                "creationTime": s.first_event,
                "firstEventTimestamp": s.first_event,
                "lastEventTimestamp": s.last_event,
                "lastIngestionTime": s.last_ingestion,
                "uploadSequenceToken": "1",
                "arn": f"{self._group_arn(group)}:log-stream:{s.stream}",
                "storedBytes": s.stored_bytes,
            }
            for s in streams
        ]
        return {"logStreams": out[: params.get("limit") or 50]}

    async def get_log_events(self, params: dict[str, Any]) -> dict[str, Any]:
        group, stream = params["logGroupName"], params["logStreamName"]
        self._require_group(group)
        limit = params.get("limit") or 10000
        token = params.get("nextToken")
        forward = _token_id(token, "f") if token and token.startswith("f/") else None
        backward = _token_id(token, "b") if token and token.startswith("b/") else None
        start, end = params.get("startTime"), params.get("endTime")
        if forward is not None or (backward is None and params.get("startFromHead")):
            events = self.store.get_log_events(
                group, stream, start=start, end=end, after_id=forward or 0, limit=limit
            )
        else:
            events = self.store.get_log_events(
                group,
                stream,
                start=start,
                end=end,
                before_id=backward,
                limit=limit,
                newest_first=True,
            )
            events.reverse()
        first = events[0].id if events else (forward or backward or 0)
        last = events[-1].id if events else (forward or backward or 0)
        return {
            "events": [_event(e) for e in events],
            "nextForwardToken": f"f/{last}",
            "nextBackwardToken": f"b/{first}",
        }

    async def filter_log_events(self, params: dict[str, Any]) -> dict[str, Any]:
        group = params["logGroupName"]
        self._require_group(group)
        limit = params.get("limit") or 10000
        events = self.store.filter_log_events(
            group,
            params.get("logStreamNames"),
            stream_prefix=params.get("logStreamNamePrefix"),
            start=params.get("startTime"),
            end=params.get("endTime"),
            after_id=_token_id(params.get("nextToken"), "n") or 0,
            contains=_terms(params.get("filterPattern")),
            limit=limit + 1,
        )
        out: dict[str, Any] = {
            "events": [
                dict(_event(e), logStreamName=e.stream, eventId=str(e.id)) for e in events[:limit]
            ],
            "searchedLogStreams": [],
        }
        if len(events) > limit:
            out["nextToken"] = f"n/{events[limit - 1].id}"
        return out


def _event(e: LogEvent) -> dict[str, Any]:
    return {"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion_time}
