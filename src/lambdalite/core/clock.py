"""Time formats AWS uses on the wire."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_timestamp(epoch: float | None = None) -> str:
    """``2020-04-10T19:06:32.563+0000``: the string form of function, alias and layer times."""
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"
