"""Keep-alive policies: how long an idle environment stays, and when one is started ahead.

A policy answers, for one slot of a function (see ``idletimes``), with two windows measured
from the moment the slot went idle:

- ``prewarm``: for this long no environment is needed; 0 means keep the one there is. When it
  is longer than a bin the environment is stopped after a bin of idleness and one is started
  (INIT without an invocation) when the window ends (see ``keeper``).
- ``keep_alive``: then an environment is kept this long (from going idle when ``prewarm`` is
  0, from the pre-warm otherwise), and stopped if nothing used it.

``fixed`` keeps every idle environment for ``Settings.keep_alive`` seconds.

``hybrid-histogram`` follows the policy of Shahrad et al. ("Serverless in the Wild", USENIX
ATC 2020), per function and per slot:

- idle times go into a histogram of ``keep_alive_bin``-second bins over ``HISTOGRAM_BINS``
  bins (one-minute bins over four hours in the paper; the bin follows the server's clock, so
  a time-compressed replay compresses it too);
- with at least ``MIN_SAMPLES`` idle times, most of them inside the range and the bin counts
  concentrated (coefficient of variation at least ``CV_THRESHOLD``), the head (5th
  percentile, lower bin edge) less a 10% margin is the pre-warm window and the tail (99th
  percentile, upper bin edge) plus 10% ends the keep-alive window;
- when most idle times fall beyond the range, the next one is predicted as the median of the
  last few out-of-bounds idle times (the paper fits an ARIMA model; a median is robust and
  needs no fitting), pre-warmed 15% before and kept until 15% after;
- otherwise (too few idle times, or spread out so no percentile means much) it falls back to
  the fixed keep-alive, so a function without a pattern costs what it costs under ``fixed``;
- windows that would stop an environment sooner than the fixed keep-alive need
  ``CONFIDENT_SAMPLES`` idle times: the 99th percentile of three samples is their maximum, and
  the next idle time exceeds that one time in four. Windows that keep it longer, or bring it
  back for a rare invocation, are taken after ``MIN_SAMPLES``.

Each slot has its own windows: a function whose bursts need three environments gets three
pre-warmed before the next burst when the histograms of its first three slots say so.
"""

from __future__ import annotations

import statistics
import weakref
from dataclasses import dataclass
from typing import Protocol

from lambdalite.config import Settings
from lambdalite.invocation.idletimes import FunctionActivity, IdleHistogram

POLICIES = ("fixed", "hybrid-histogram")
HISTOGRAM_BINS = 240
HEAD_PERCENTILE = 5.0
TAIL_PERCENTILE = 99.0
MARGIN = 0.10
MIN_SAMPLES = 3
CONFIDENT_SAMPLES = 20
CV_THRESHOLD = 2.0
OUT_OF_BOUNDS_SHARE = 0.5
OUT_OF_BOUNDS_MARGIN = 0.15


@dataclass(frozen=True)
class Windows:
    prewarm: float
    keep_alive: float
    source: str  # fixed | histogram | out-of-bounds | fallback

    @property
    def span(self) -> float:
        """Seconds from going idle until no environment is kept any more."""
        return self.prewarm + self.keep_alive


class KeepAlivePolicy(Protocol):
    name: str

    def windows(self, activity: FunctionActivity, slot: int) -> Windows: ...


class FixedKeepAlive:
    name = "fixed"

    def __init__(self, keep_alive: float) -> None:
        self.keep_alive = keep_alive

    def windows(self, activity: FunctionActivity, slot: int) -> Windows:
        return Windows(0.0, self.keep_alive, "fixed")


class HybridHistogram:
    name = "hybrid-histogram"

    def __init__(self, fallback_keep_alive: float) -> None:
        self.fallback = Windows(0.0, fallback_keep_alive, "fallback")
        # Windows per histogram as of its sample count: asked on every idle transition and
        # every sweep, recomputed (a walk over the bins) only when an idle time was recorded.
        self._memo: weakref.WeakKeyDictionary[IdleHistogram, tuple[int, Windows]] = (
            weakref.WeakKeyDictionary()
        )

    def windows(self, activity: FunctionActivity, slot: int) -> Windows:
        hist = activity.histogram(slot)
        memo = self._memo.get(hist)
        if memo is not None and memo[0] == hist.total:
            return memo[1]
        found = self._windows(hist)
        self._memo[hist] = (hist.total, found)
        return found

    def _windows(self, hist: IdleHistogram) -> Windows:
        if hist.total < MIN_SAMPLES:
            return self.fallback
        if hist.out_of_bounds > OUT_OF_BOUNDS_SHARE * hist.total:
            predicted = statistics.median(hist.recent_out_of_bounds)
            prewarm = predicted * (1 - OUT_OF_BOUNDS_MARGIN)
            return Windows(prewarm, predicted * 2 * OUT_OF_BOUNDS_MARGIN, "out-of-bounds")
        if hist.in_range < MIN_SAMPLES or hist.bin_cv() < CV_THRESHOLD:
            return self.fallback
        head = hist.percentile_bin(HEAD_PERCENTILE) * hist.bin_s
        tail = (hist.percentile_bin(TAIL_PERCENTILE) + 1) * hist.bin_s
        prewarm = head * (1 - MARGIN)
        found = Windows(prewarm, tail * (1 + MARGIN) - prewarm, "histogram")
        if found.span < self.fallback.span and hist.total < CONFIDENT_SAMPLES:
            return self.fallback
        return found


def make_policy(settings: Settings) -> KeepAlivePolicy:
    if settings.keep_alive_policy == "fixed":
        return FixedKeepAlive(settings.keep_alive)
    if settings.keep_alive_policy == "hybrid-histogram":
        return HybridHistogram(settings.keep_alive)
    raise ValueError(
        f"unknown keep-alive policy {settings.keep_alive_policy!r}: one of {', '.join(POLICIES)}"
    )
