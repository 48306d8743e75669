"""``GET /_lambdalite/stats`` (JSON) and ``GET /_lambdalite/metrics`` (Prometheus text)."""

from __future__ import annotations

import json
import logging

from lambdalite.api.asgi import Receive, Scope, Send
from lambdalite.control.stats import StatsService, prometheus

log = logging.getLogger(__name__)

STATS_PATH = "/_lambdalite/stats"
METRICS_PATH = "/_lambdalite/metrics"
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


class StatsEndpoint:
    def __init__(self, stats: StatsService) -> None:
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            snapshot = await self.stats.snapshot()
        except Exception:
            log.exception("collecting figures failed")
            await _reply(send, 500, b"application/json", b'{"message": "figures unavailable"}')
            return
        body = json.dumps(snapshot, indent=None, separators=(",", ":")).encode()
        await _reply(send, 200, b"application/json", body)


class MetricsEndpoint:
    def __init__(self, stats: StatsService) -> None:
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            snapshot = await self.stats.snapshot()
        except Exception:
            log.exception("collecting figures failed")
            await _reply(send, 500, b"text/plain", b"figures unavailable\n")
            return
        await _reply(send, 200, PROMETHEUS_TYPE, prometheus(snapshot).encode())
