"""What a function's traffic looks like from the pool's side: idle times per concurrency slot.

An *idle time* is how long a function went without needing an environment it had just used.
With concurrency that question has one answer per level: the second environment is needed
only while two invocations overlap, so its idle times (from the moment concurrency fell below
two until it reaches two again) are longer than the first environment's. Each level is a
*slot*; slot 1 is "the function is idle at all", the idle time of the workload model in which
a function holds one environment. Slots above ``MAX_SLOTS`` share the last histogram.

A histogram counts idle times in bins of ``bin_s`` seconds up to ``bins`` bins; longer ones
are *out of bounds*: counted, and the most recent few kept for the out-of-bounds predictor.
Counts are kept whole (no decay): a function's pattern over hours is what the policy wants.

Idle times are taken at the histogram's resolution: of the arrivals in one slot within one bin,
only the first records its idle time. A burst of a hundred invocations a second apart is one
period of activity, not a hundred idle times of a second that would bury the gap between
bursts below the tail percentile (the minute-resolution trace the policy was designed on
cannot tell invocations within a minute apart either).
"""

from __future__ import annotations

import math
from collections import deque

from lambdalite.invocation.model import FunctionSpec

MAX_SLOTS = 16
RECENT_OUT_OF_BOUNDS = 8


class IdleHistogram:
    def __init__(self, bin_s: float, bins: int) -> None:
        self.bin_s = bin_s
        self.counts = [0] * bins
        self.in_range = 0
        self.out_of_bounds = 0
        self.recent_out_of_bounds: deque[float] = deque(maxlen=RECENT_OUT_OF_BOUNDS)

    @property
    def range_s(self) -> float:
        return self.bin_s * len(self.counts)

    @property
    def total(self) -> int:
        return self.in_range + self.out_of_bounds

    def record(self, idle_s: float) -> None:
        idle_s = max(0.0, idle_s)
        index = int(idle_s // self.bin_s)
        if index >= len(self.counts):
            self.out_of_bounds += 1
            self.recent_out_of_bounds.append(idle_s)
            return
        self.counts[index] += 1
        self.in_range += 1

    def percentile_bin(self, percent: float) -> int:
        """The bin holding the ``percent``-th percentile of in-range idle times."""
        if not self.in_range:
            return 0
        rank = max(1, math.ceil(self.in_range * percent / 100))
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return index
        return len(self.counts) - 1

    def bin_cv(self) -> float:
        """Coefficient of variation of the bin counts: high when idle times concentrate in a
        few bins (a pattern), near zero when they spread evenly over the range (none)."""
        n = len(self.counts)
        mean = self.in_range / n
        if mean == 0:
            return 0.0
        variance = sum((c - mean) ** 2 for c in self.counts) / n
        return math.sqrt(variance) / mean

    def reuse_probability(self, idle_for: float, horizon: float) -> float:
        """Estimated chance that the next idle time ends within ``horizon`` seconds, given
        that it has already lasted ``idle_for`` (bin resolution; out-of-bounds idle times
        count as ending after the range)."""
        start = int(max(0.0, idle_for) // self.bin_s)
        end = int((max(0.0, idle_for) + horizon) // self.bin_s)
        surviving = sum(self.counts[start:]) + self.out_of_bounds
        if surviving == 0:
            return 0.0
        return sum(self.counts[start : end + 1]) / surviving


class FunctionActivity:
    """Invocations in flight of one function version, and the idle times of each slot."""

    def __init__(self, bin_s: float, bins: int) -> None:
        self.bin_s = bin_s
        self.bins = bins
        self.inflight = 0
        self.spec: FunctionSpec | None = None  # the latest revision seen, for pre-warming
        self._idle_since: dict[int, float] = {}
        self._last_bin: dict[int, int] = {}  # per slot: the bin of the last recorded arrival
        self._histograms: dict[int, IdleHistogram] = {}
        # Set when the function went idle, for each slot whose environment the policy chose
        # to stop and start again later: slot -> (when to start it, how long to keep it).
        self.prewarms: dict[int, tuple[float, float]] = {}

    def histogram(self, slot: int) -> IdleHistogram:
        slot = max(1, min(slot, MAX_SLOTS))
        found = self._histograms.get(slot)
        if found is None:
            found = self._histograms[slot] = IdleHistogram(self.bin_s, self.bins)
        return found

    def arrived(self, now: float) -> None:
        """An invocation took an environment: slot ``inflight + 1`` is in use again."""
        self.inflight += 1
        self.prewarms.clear()
        slot = self.inflight
        since = self._idle_since.pop(slot, None)
        current = int(now // self.bin_s)
        if since is not None and self._last_bin.get(slot) != current:
            self.histogram(slot).record(now - since)
        self._last_bin[slot] = current

    def departed(self, now: float) -> None:
        """An invocation ended: the highest slot in use is idle from now."""
        if self.inflight <= 0:
            return
        self._idle_since[self.inflight] = now
        self.inflight -= 1

    def idle_for(self, slot: int, now: float) -> float:
        since = self._idle_since.get(slot)
        return 0.0 if since is None else now - since
