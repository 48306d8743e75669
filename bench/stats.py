"""Summaries of latency samples: the percentiles every table row reports."""

from __future__ import annotations

import math
import statistics
from typing import Any


def percentile(ordered: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) of sorted samples by linear interpolation between ranks.

    Interpolating keeps p99 of a few hundred samples meaningful instead of snapping it to the
    maximum, which one scheduler hiccup would otherwise decide.
    """
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(samples_ms: list[float]) -> dict[str, Any]:
    """p50/p90/p99/min/max/mean of millisecond samples, rounded for humans and JSON."""
    ordered = sorted(samples_ms)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "p50_ms": round(percentile(ordered, 0.50), 4),
        "p90_ms": round(percentile(ordered, 0.90), 4),
        "p99_ms": round(percentile(ordered, 0.99), 4),
        "min_ms": round(ordered[0], 4),
        "max_ms": round(ordered[-1], 4),
        "mean_ms": round(statistics.fmean(ordered), 4),
    }
