"""``GET /_lambdalite/stats`` (JSON), ``GET /_lambdalite/metrics`` (Prometheus text) and
``GET /_lambdalite/environments`` (the live execution environments, JSON)."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from lambdalite.api.asgi import Receive, Scope, Send
from lambdalite.control.stats import StatsService, prometheus

log = logging.getLogger(__name__)

STATS_PATH = "/_lambdalite/stats"
METRICS_PATH = "/_lambdalite/metrics"
ENVIRONMENTS_PATH = "/_lambdalite/environments"
PROMETHEUS_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


async def _reply(send: Send, status: int, kind: bytes, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _json(snapshot: dict[str, Any]) -> bytes:
    return json.dumps(snapshot, indent=None, separators=(",", ":")).encode()


def _prometheus(snapshot: dict[str, Any]) -> bytes:
    return prometheus(snapshot).encode()


class FiguresEndpoint:
    """Serves one rendering of the live figures; a failure to collect them is a 500."""

    def __init__(
        self, stats: StatsService, kind: bytes, render: Callable[[dict[str, Any]], bytes]
    ) -> None:
        self.stats = stats
        self.kind = kind
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            snapshot = await self.stats.snapshot()
        except Exception:
            log.exception("collecting figures failed")
            await _reply(send, 500, b"text/plain", b"figures unavailable\n")
            return
        await _reply(send, 200, self.kind, self.render(snapshot))


def stats_endpoint(stats: StatsService) -> FiguresEndpoint:
    return FiguresEndpoint(stats, b"application/json", _json)


def metrics_endpoint(stats: StatsService) -> FiguresEndpoint:
    return FiguresEndpoint(stats, PROMETHEUS_TYPE, _prometheus)


class EnvironmentsEndpoint:
    """Lists the execution environments the server holds, with the host pid of each.

    Forked environments share one command line and initial environment block with the
    process they were forked from, so ``/proc`` alone cannot tell which process runs which
    function; operators and the benchmark suite ask here instead.
    """

    def __init__(self, environments: Callable[[], Sequence[Any]]) -> None:
        self.environments = environments

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rows = [_camel(dataclasses.asdict(info)) for info in self.environments()]
        body = json.dumps({"environments": rows}, separators=(",", ":")).encode()
        await _reply(send, 200, b"application/json", body)


def _camel(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        head, *rest = key.split("_")
        out[head + "".join(part.title() for part in rest)] = value
    return out
