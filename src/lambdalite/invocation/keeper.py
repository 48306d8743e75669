"""The keeper: applies the keep-alive policy and the idle memory budget to the pools.

It watches every pool (``PoolObserver``): invocations taking and returning environments feed
each function's idle times, and an environment going idle may push the idle memory over the
budget, in which case the least valuable idle environments are evicted at once. The
manager's reaper calls ``sweep`` a few times per keep-alive window: it removes environments
whose window has passed, stops those of functions the policy expects to stay idle for a
while, and says which functions are due for a pre-warm. Everything here is bookkeeping on the
event loop; starting and destroying environments is the manager's.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lambdalite.config import Settings
from lambdalite.invocation.budget import Candidate, budget_mb, choose_victims, reuse_value
from lambdalite.invocation.environment import ExecutionEnvironment, State
from lambdalite.invocation.idletimes import MAX_SLOTS, FunctionActivity
from lambdalite.invocation.keepalive import HISTOGRAM_BINS, make_policy
from lambdalite.invocation.model import FunctionSpec
from lambdalite.invocation.pool import Pool, counted_mb

log = logging.getLogger(__name__)

PoolKey = tuple[str, str, str]
# A pre-warmed environment runs INIT before any invocation, logged then (INIT_START and
# INIT_REPORT), and its first invocation carries no Init Duration. The runtime is told
# "on-demand", as Lambda does when it initializes an on-demand environment proactively.
PREWARM_INIT_TYPE = "on-demand"


@dataclass(frozen=True)
class Prewarm:
    spec: FunctionSpec
    keep_alive: float  # seconds the pre-warmed environment is kept unless used


@dataclass
class KeeperStats:
    expired: int = 0
    evicted: int = 0
    unloaded: int = 0  # stopped at once because a pre-warm was scheduled instead
    prewarmed: int = 0


class Keeper:
    def __init__(
        self,
        settings: Settings,
        pools: Mapping[PoolKey, Pool],
        clock: Callable[[], float],
        evict: Callable[[ExecutionEnvironment], None],
    ) -> None:
        self.policy = make_policy(settings)
        self.limit_mb = budget_mb(settings)
        self.horizon = settings.keep_alive
        self.bin_s = settings.keep_alive_bin
        self.idle_mb = 0
        self.stats = KeeperStats()
        self._pools = pools
        self._clock = clock
        self._evict = evict
        self._activity: dict[tuple[str, str], FunctionActivity] = {}
        # Pre-warmed environments not used yet: when they were warmed, how long to keep them.
        self._warmed: weakref.WeakKeyDictionary[ExecutionEnvironment, tuple[float, float]] = (
            weakref.WeakKeyDictionary()
        )

    def activity(self, function_name: str, version: str) -> FunctionActivity:
        key = (function_name, version)
        found = self._activity.get(key)
        if found is None:
            found = self._activity[key] = FunctionActivity(self.bin_s, HISTOGRAM_BINS)
        return found

    def forget(self, function_name: str, version: str | None) -> None:
        """The function (version) was changed or deleted: no pre-warm of what it was. Its idle
        times stay (a new revision is usually invoked like the old one) unless it was deleted
        altogether (``version`` None)."""
        for key in [k for k in self._activity if k[0] == function_name]:
            if version is None:
                del self._activity[key]
            elif key[1] == version:
                self._activity[key].prewarms.clear()
                self._activity[key].spec = None

    def _of(self, pool: Pool) -> FunctionActivity:
        return self.activity(pool.function_name, pool.version)

    # -- PoolObserver -------------------------------------------------------------------------
    def started(self, pool: Pool, env: ExecutionEnvironment) -> None:
        if self._warmed:  # rarely any: no weak reference made per invocation for nothing
            self._warmed.pop(env, None)
        activity = self._of(pool)
        activity.spec = env.spec
        activity.arrived(self._clock())

    def finished(self, pool: Pool, env: ExecutionEnvironment, kept: bool) -> None:
        now = self._clock()
        activity = self._of(pool)
        activity.departed(now)
        if activity.inflight == 0:
            self._plan_prewarms(activity, now)
        if kept and self.idle_mb > self.limit_mb:
            self.enforce_budget()

    def idle_memory_changed(self, delta_mb: int) -> None:
        self.idle_mb += delta_mb

    # -- pre-warmed environments --------------------------------------------------------------
    def _plan_prewarms(self, activity: FunctionActivity, now: float) -> None:
        """The function went idle: slots 1, 2, ... whose windows start with a pre-warm longer
        than a bin get their environment stopped after a bin and one started when the window
        ends (a shorter pre-warm window just keeps the environment)."""
        activity.prewarms.clear()
        for slot in range(1, MAX_SLOTS + 1):
            windows = self.policy.windows(activity, slot)
            if windows.prewarm <= self.bin_s:
                break
            idle_since = now - activity.idle_for(slot, now)
            activity.prewarms[slot] = (idle_since + windows.prewarm, windows.keep_alive)

    def warmed(self, pool: Pool, env: ExecutionEnvironment, keep_alive: float) -> None:
        """A pre-warmed environment joined ``pool``'s idle stack."""
        self._warmed[env] = (self._clock(), keep_alive)
        self.stats.prewarmed += 1
        if self.idle_mb > self.limit_mb:
            self.enforce_budget()

    # -- the reaper's questions ---------------------------------------------------------------
    def reap_interval(self) -> float:
        shortest = min(self.horizon, self.bin_s) if self.policy.name != "fixed" else self.horizon
        return min(max(shortest / 4, 0.01), 1.0)

    def sweep(self) -> tuple[list[ExecutionEnvironment], list[Prewarm]]:
        """Remove the idle environments the policy no longer keeps; list pre-warms now due."""
        now = self._clock()
        expired: list[ExecutionEnvironment] = []
        for pool in list(self._pools.values()):
            activity = self._of(pool)
            keep: list[ExecutionEnvironment] = []
            for position, env in enumerate(reversed(pool.idle)):  # top of the stack first
                slot = activity.inflight + 1 + position
                alive = env.state is State.IDLE
                if env.provisioned or (alive and not self._expired(activity, env, slot, now)):
                    keep.append(env)
            if len(keep) != len(pool.idle):
                expired.extend(pool.keep_only(keep))
        due: list[Prewarm] = []
        for activity in self._activity.values():
            spec = activity.spec
            if not activity.prewarms or spec is None:
                continue
            for slot, (at, keep_alive) in sorted(activity.prewarms.items()):
                if at > now:
                    continue
                del activity.prewarms[slot]
                due.append(Prewarm(spec, keep_alive))
        return expired, due

    def _expired(
        self, activity: FunctionActivity, env: ExecutionEnvironment, slot: int, now: float
    ) -> bool:
        warmed = self._warmed.get(env)
        if warmed is not None:
            since, keep_alive = warmed
            if now - since < keep_alive:
                return False
            self.stats.expired += 1
            return True
        idle_for = now - env.last_used
        # Its slot is pre-warmed later: stopped once idle for a bin (the histogram's
        # resolution: within one bin an arrival is part of the same period of activity).
        if slot in activity.prewarms and idle_for >= self.bin_s:
            self.stats.unloaded += 1
            return True
        if idle_for < self.policy.windows(activity, slot).span:
            return False
        self.stats.expired += 1
        return True

    # -- the idle memory budget ---------------------------------------------------------------
    def enforce_budget(self) -> list[ExecutionEnvironment]:
        """Evict the least valuable idle environments until the idle memory fits the budget."""
        now = self._clock()
        candidates: list[Candidate] = []
        owner: dict[ExecutionEnvironment, Pool] = {}
        for pool in self._pools.values():
            activity = self._of(pool)
            for position, env in enumerate(reversed(pool.idle)):
                memory = counted_mb(env)
                if memory == 0:
                    continue
                slot = activity.inflight + 1 + position
                warmed = self._warmed.get(env)
                idle_for = activity.idle_for(1, now) if warmed else now - env.last_used
                dead = env.state is not State.IDLE
                value = 0.0 if dead else reuse_value(activity, slot, idle_for, self.horizon)
                candidates.append(Candidate(env, memory, value / memory, idle_for))
                owner[env] = pool
        victims = choose_victims(candidates, self.idle_mb, self.limit_mb)
        for victim in victims:
            log.debug(
                "idle memory %d MB over the budget of %d MB: stopping an environment of %s",
                self.idle_mb,
                self.limit_mb,
                victim.env.spec.function_name,
            )
            owner[victim.env].remove(victim.env)
            self._warmed.pop(victim.env, None)
            self._evict(victim.env)
        self.stats.evicted += len(victims)
        return [victim.env for victim in victims]
