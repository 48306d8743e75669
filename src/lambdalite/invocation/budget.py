"""The idle memory budget: how much configured memory idle environments may hold together.

An idle environment costs its function's ``MemorySize`` while it waits. When the idle ones
together would exceed the budget, the least valuable are stopped first. Value is the chance
of being used again soon per MB held: the probability that the environment's slot (see
``idletimes``) is needed within the next ``horizon`` seconds, estimated from that slot's
idle-time histogram, divided by ``MemorySize``. While a slot has too few idle times to
estimate from, the prior is ``1 / slot``: a function's second idle environment is needed only
when two invocations overlap, its tenth only at ten. Equal values go oldest first (least
recently used).

Environments kept for provisioned concurrency are not idle capacity the platform chose to
keep: they are neither counted nor evicted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lambdalite.config import Settings
from lambdalite.invocation.environment import ExecutionEnvironment
from lambdalite.invocation.idletimes import FunctionActivity

MIN_ESTIMATE_SAMPLES = 3


def budget_mb(settings: Settings) -> int:
    """``idle_memory_mb``, or half of the machine's physical memory when it is 0."""
    if settings.idle_memory_mb > 0:
        return settings.idle_memory_mb
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 4096
    return max(128, total // (2 * 1024 * 1024))


@dataclass(frozen=True)
class Candidate:
    env: ExecutionEnvironment
    memory_mb: int
    value: float  # chance of reuse soon, per MB
    idle_for: float


def reuse_value(activity: FunctionActivity, slot: int, idle_for: float, horizon: float) -> float:
    """Chance that ``slot`` of the function is needed within ``horizon`` seconds."""
    hist = activity.histogram(slot)
    if hist.total < MIN_ESTIMATE_SAMPLES:
        return 1.0 / max(1, slot)
    return hist.reuse_probability(idle_for, horizon)


def choose_victims(candidates: list[Candidate], held_mb: int, limit_mb: int) -> list[Candidate]:
    """The least valuable candidates whose removal brings ``held_mb`` within ``limit_mb``."""
    victims: list[Candidate] = []
    if held_mb <= limit_mb:
        return victims
    for candidate in sorted(candidates, key=lambda c: (c.value, -c.idle_for)):
        victims.append(candidate)
        held_mb -= candidate.memory_mb
        if held_mb <= limit_mb:
            break
    return victims
