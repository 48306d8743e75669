"""The keep-alive policies against synthetic idle-time series (no processes, no clock)."""

from __future__ import annotations

import random

import pytest

from lambdalite.config import Settings
from lambdalite.invocation.idletimes import FunctionActivity, IdleHistogram
from lambdalite.invocation.keepalive import (
    CONFIDENT_SAMPLES,
    HISTOGRAM_BINS,
    FixedKeepAlive,
    HybridHistogram,
    Windows,
    make_policy,
)

MINUTE = 60.0


def activity_with(idle_times: list[float], bin_s: float = MINUTE) -> FunctionActivity:
    """A function invoked once per period of activity, idle for each of ``idle_times``."""
    activity = FunctionActivity(bin_s, HISTOGRAM_BINS)
    now = 1000.0
    activity.arrived(now)
    for idle in idle_times:
        now += 1.0
        activity.departed(now)
        now += idle
        activity.arrived(now)
    activity.departed(now + 1.0)
    return activity


def test_fixed_policy_keeps_every_slot_for_keep_alive() -> None:
    policy = make_policy(Settings(keep_alive=600))
    assert isinstance(policy, FixedKeepAlive)
    activity = activity_with([30 * MINUTE] * 50)
    assert policy.windows(activity, 1) == Windows(0.0, 600, "fixed")
    assert policy.windows(activity, 7) == Windows(0.0, 600, "fixed")


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="hybrid-histogram"):
        make_policy(Settings(keep_alive_policy="lru"))


def test_periodic_function_is_prewarmed_just_before_its_period() -> None:
    """Invoked every 30 minutes (timer-like): unloaded in between, back 10% early, kept until
    10% after the period's bin."""
    policy = HybridHistogram(600)
    activity = activity_with([30 * MINUTE + 5] * CONFIDENT_SAMPLES)
    windows = policy.windows(activity, 1)
    assert windows.source == "histogram"
    assert windows.prewarm == pytest.approx(30 * MINUTE * 0.9)
    assert windows.span == pytest.approx(31 * MINUTE * 1.1)
    # The environment is there before the next invocation and still there when it comes.
    assert windows.prewarm < 30 * MINUTE + 5 < windows.span


def test_long_periods_need_few_samples_short_windows_need_many() -> None:
    """A pattern that keeps environments longer than the fixed keep-alive is trusted after a
    few idle times; one that would stop them sooner only after ``CONFIDENT_SAMPLES``."""
    policy = HybridHistogram(600)
    assert policy.windows(activity_with([30 * MINUTE] * 3), 1).source == "histogram"
    assert policy.windows(activity_with([30 * MINUTE] * 2), 1).source == "fallback"
    few_short = activity_with([2 * MINUTE + 10] * (CONFIDENT_SAMPLES - 1))
    assert policy.windows(few_short, 1) == Windows(0.0, 600, "fallback")
    many_short = activity_with([2 * MINUTE + 10] * CONFIDENT_SAMPLES)
    windows = policy.windows(many_short, 1)
    assert windows.source == "histogram"
    assert windows.prewarm == pytest.approx(2 * MINUTE * 0.9)
    assert windows.span == pytest.approx(3 * MINUTE * 1.1)


def test_frequent_function_keeps_its_environment_briefly() -> None:
    """Idle for seconds between invocations: no pre-warm, kept for a bin plus the margin
    instead of the fixed ten minutes."""
    activity = activity_with([20.0] * 120)
    windows = HybridHistogram(600).windows(activity, 1)
    assert windows == Windows(0.0, pytest.approx(MINUTE * 1.1), "histogram")


def test_spread_out_idle_times_fall_back_to_the_fixed_keep_alive() -> None:
    """Idle times spread evenly over the whole range: no percentile means much."""
    rng = random.Random(7)
    idle = [rng.uniform(0, HISTOGRAM_BINS * MINUTE) for _ in range(2000)]
    activity = activity_with(idle)
    assert activity.histogram(1).bin_cv() < 2
    assert HybridHistogram(600).windows(activity, 1) == Windows(0.0, 600, "fallback")


def test_out_of_bounds_idle_times_use_the_median_of_recent_ones() -> None:
    """Idle for longer than the four-hour range: pre-warm 15% before the predicted return."""
    activity = activity_with([5 * 3600.0, 6 * 3600.0, 7 * 3600.0, 6 * 3600.0])
    windows = HybridHistogram(600).windows(activity, 1)
    assert windows.source == "out-of-bounds"
    assert windows.prewarm == pytest.approx(6 * 3600 * 0.85)
    assert windows.span == pytest.approx(6 * 3600 * 1.15)


def test_bin_width_is_the_time_unit() -> None:
    """With one-second bins (a replay compressed 60x) the same pattern gives windows 60x
    shorter."""
    activity = activity_with([30.0 + 5 / 60] * CONFIDENT_SAMPLES, bin_s=1.0)
    windows = HybridHistogram(10).windows(activity, 1)
    assert windows.prewarm == pytest.approx(30 * 0.9)
    assert windows.span == pytest.approx(31 * 1.1)


def test_a_burst_is_one_period_of_activity() -> None:
    """Within one bin only the first arrival records its idle time: a hundred invocations a
    second apart every 21 minutes leave a histogram of 20-minute gaps."""
    activity = FunctionActivity(MINUTE, HISTOGRAM_BINS)
    for burst in range(4):
        start = 1000 * MINUTE + burst * 21 * MINUTE  # each burst starts a bin
        for i in range(100):
            activity.arrived(start + i * 0.5)
            activity.departed(start + i * 0.5 + 0.1)
    hist = activity.histogram(1)
    assert hist.total == 3  # 21 minutes less the burst's 50 seconds
    assert hist.percentile_bin(5) == hist.percentile_bin(99) == 20


def test_slots_record_idle_times_per_concurrency_level() -> None:
    """Two overlapping invocations every 10 minutes, one every minute: slot 2 sees gaps of
    ten minutes, slot 1 of one."""
    activity = FunctionActivity(MINUTE, HISTOGRAM_BINS)
    now = 0.0
    for minute in range(60):
        now = minute * MINUTE + 1
        activity.arrived(now)
        if minute % 10 == 0:
            activity.arrived(now + 1)
            activity.departed(now + 2)
        activity.departed(now + 3)
    slot1, slot2 = activity.histogram(1), activity.histogram(2)
    assert slot1.total == 59 and slot1.percentile_bin(99) == 0
    assert slot2.total == 5 and slot2.percentile_bin(5) == 9
    policy = HybridHistogram(600)
    assert policy.windows(activity, 1).span == pytest.approx(MINUTE * 1.1)
    assert policy.windows(activity, 2).prewarm == pytest.approx(9 * MINUTE * 0.9)


def test_histogram_percentiles_and_reuse_probability() -> None:
    hist = IdleHistogram(MINUTE, 10)
    for idle in [30.0] * 50 + [150.0] * 50:
        hist.record(idle)
    hist.record(3600.0)  # beyond ten one-minute bins
    assert (hist.in_range, hist.out_of_bounds) == (100, 1)
    assert hist.percentile_bin(50) == 0 and hist.percentile_bin(51) == 2
    # Just idle: half the next idle times end within a minute.
    assert hist.reuse_probability(0.0, 30.0) == pytest.approx(50 / 101)
    # Idle for 90 s already: the next ones to end are in bin 2 (or out of bounds).
    assert hist.reuse_probability(90.0, 60.0) == pytest.approx(50 / 51)
    assert hist.reuse_probability(200.0, 60.0) == 0.0
