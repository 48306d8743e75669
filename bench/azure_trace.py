"""The Azure Functions 2019 trace sample, turned into a replay schedule.

The trace holds, per function, invocation counts per minute, a duration distribution
(percentiles) and its application's allocated memory. A replay needs individual arrivals: each
minute's invocations are placed uniformly at random inside that minute (seeded, so every run
replays the same schedule), and each invocation draws its running time from the function's
percentiles. Time is compressed by a factor: minutes of trace become seconds of replay, and
running times shrink by the same factor, which keeps the number of invocations in flight the
same as in the trace. Start-up costs do not shrink, so a high factor turns the trace's steady
traffic into bursts a real deployment would not see.
"""

from __future__ import annotations

import bisect
import csv
import math
import random
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TRACE = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
DEFAULT_TRACE = DEFAULT_TRACE / "azure-functions-2019-sample-100"
_PERCENTILES = (0.0, 0.01, 0.25, 0.50, 0.75, 0.99, 1.0)
_DURATION_COLUMNS = tuple(
    f"percentile_Average_{p}" for p in ("0", "1", "25", "50", "75", "99", "100")
)


@dataclass(frozen=True)
class TraceFunction:
    index: int
    trigger: str
    memory_mb: float  # the application's average allocated memory
    durations_ms: tuple[float, ...]  # at _PERCENTILES
    counts: tuple[int, ...]  # invocations per minute

    @property
    def name(self) -> str:
        return f"trace-{self.index:03d}"

    @property
    def memory_size(self) -> int:
        """The function's MemorySize: the trace's allocation, at least Lambda's 128 MB."""
        return max(128, math.ceil(self.memory_mb))

    def draw_duration_ms(self, rng: random.Random) -> float:
        u = rng.random()
        i = min(bisect.bisect_right(_PERCENTILES, u), len(_PERCENTILES) - 1)
        lo_p, hi_p = _PERCENTILES[i - 1], _PERCENTILES[i]
        lo_d, hi_d = self.durations_ms[i - 1], self.durations_ms[i]
        return lo_d + (hi_d - lo_d) * (u - lo_p) / (hi_p - lo_p)


@dataclass(frozen=True)
class Arrival:
    at_s: float  # replay seconds from the start of the measured slice (negative: warm-up)
    function: TraceFunction
    duration_ms: float  # replay milliseconds the body runs

    @property
    def warmup(self) -> bool:
        return self.at_s < 0


def load(directory: Path = DEFAULT_TRACE) -> list[TraceFunction]:
    with open(directory / "durations.csv", newline="") as fh:
        durations = {row["HashFunction"]: row for row in csv.DictReader(fh)}
    with open(directory / "memory.csv", newline="") as fh:
        memory = {row["HashApp"]: row for row in csv.DictReader(fh)}
    functions = []
    with open(directory / "invocations.csv", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for index, row in enumerate(reader):
            owner_app, function_hash, trigger = row[1], row[2], row[3]
            d = durations[function_hash]
            functions.append(
                TraceFunction(
                    index=index,
                    trigger=trigger,
                    memory_mb=float(memory[owner_app]["AverageAllocatedMb"]),
                    durations_ms=tuple(float(d[c]) for c in _DURATION_COLUMNS),
                    counts=tuple(int(c) for c in row[4:]),
                )
            )
    return functions


def schedule(
    functions: list[TraceFunction], start_minute: int, minutes: int, seconds: float, seed: int
) -> list[Arrival]:
    """Every invocation of the slice in replay time, sorted, after a warm-up minute.

    The warm-up is the trace minute before the slice (when there is one), replayed before
    time 0 with its arrivals thinned by a ramp from none to all: the platform reaches the
    trace's steady state (the slice starts in the middle of a day of traffic) without a
    synthetic burst of every function arriving cold at once. Warm-up arrivals are not scored.
    """
    rng = random.Random(seed)
    minute_s = seconds / minutes
    factor = 60.0 / minute_s
    arrivals = []
    first = max(0, start_minute - 1)
    for fn in functions:
        for minute in range(first, start_minute + minutes):
            for _ in range(fn.counts[minute]):
                offset = (minute - start_minute + rng.random()) * minute_s
                kept = offset >= 0 or rng.random() < 1 + offset / minute_s
                duration = fn.draw_duration_ms(rng) / factor
                if kept:
                    arrivals.append(Arrival(offset, fn, duration))
    arrivals.sort(key=lambda a: a.at_s)
    return arrivals
