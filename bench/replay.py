"""Trace replay: a compressed slice of the Azure Functions trace against lambdalite.

Every arrival of the slice is sent at its time (open loop: a slow server does not slow the
arrivals down), with ``LogType=Tail`` so the REPORT line tells whether the invocation had to
start an environment (``Init Duration``) or restore one (``Restore Duration``): that is a cold
start by the platform's own account. While it runs, the environments of each function are
counted every quarter second; those not serving an invocation are idle, and idle
environments times the function's memory size, integrated over time, is the idle memory a
keep-alive policy holds (reported in trace time: GB-seconds of the original eight hours).

Each keep-alive policy is one replay on a fresh server. A policy names the server settings it
needs; one the server does not know yet is skipped with that reason. Settings in seconds are
given in trace time and divided by the compression factor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import azure_trace as trace
from bench import packages, procs
from bench.context import Context
from bench.figures import Figure, failed, skipped
from bench.httpclient import AsyncHttpConnection, HttpError
from bench.lambda_api import create_function, init_kind, invoke_request, tail_log
from bench.servers import ChildServer, ServerError, running
from bench.stats import summarize
from lambdalite.config import Settings


@dataclass(frozen=True)
class Policy:
    name: str
    label: str
    settings: dict[str, Any]
    trace_seconds: tuple[str, ...] = ()  # settings given in trace seconds, to compress


POLICIES = (
    Policy("fixed-10min", "fixed 10-minute keep-alive", {"keep_alive": 600}, ("keep_alive",)),
    # The fixed keep-alive is the hybrid policy's fallback and the bin its time unit: both are
    # trace time, compressed like the baseline's keep-alive.
    Policy(
        "hybrid-histogram",
        "adaptive keep-alive (hybrid histogram)",
        {"keep_alive_policy": "hybrid-histogram", "keep_alive": 600, "keep_alive_bin": 60},
        ("keep_alive", "keep_alive_bin"),
    ),
)


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)  # scheduled arrival → answer
    overheads: list[float] = field(default_factory=list)  # latency minus the body's time
    lags: list[float] = field(default_factory=list)  # scheduled arrival → request sent
    completed: int = 0
    errors: int = 0
    throttles: int = 0
    colds: int = 0
    restores: int = 0
    first_colds: int = 0  # cold starts that were a function's first invocation of the replay
    arrivals: int = 0  # in the measured slice
    warmup_arrivals: int = 0
    warmup_failures: int = 0
    first_error: str = ""
    idle_env_s: float = 0.0
    idle_gb_s: float = 0.0
    peak_envs: int = 0


def run(ctx: Context, directory: Path | None) -> None:
    plan = ctx.plan
    try:
        functions = trace.load(directory or trace.DEFAULT_TRACE)
    except OSError as exc:
        for policy in POLICIES:
            ctx.results.add(_skip(policy, f"trace not readable: {exc}"))
        return
    arrivals = trace.schedule(
        functions,
        plan.replay_start_minute,
        plan.replay_minutes,
        plan.replay_seconds,
        plan.replay_seed,
    )
    known = {f.name for f in dataclasses.fields(Settings)}
    for policy in POLICIES:
        missing = sorted(set(policy.settings) - known)
        if missing:
            why = f"not implemented yet: lambdalite has no setting {', '.join(missing)}"
            ctx.results.add(_skip(policy, why))
            continue
        settings = {
            key: value / plan.compression if key in policy.trace_seconds else value
            for key, value in policy.settings.items()
        }
        first = 480 + plan.replay_start_minute
        ctx.log(
            f"replay: {policy.name}, {len(arrivals)} invocations of trace minutes {first}-"
            f"{first + plan.replay_minutes} in {plan.replay_seconds:g}s (x{plan.compression:g}), "
            "after a warm-up minute"
        )
        try:
            ctx.results.add(replay_policy(ctx, policy, settings, arrivals))
        except (ServerError, RuntimeError, OSError) as exc:
            ctx.results.add(
                failed(f"replay.{policy.name}", "replay", policy.label, "lambdalite", str(exc))
            )


def replay_policy(
    ctx: Context, policy: Policy, settings: dict[str, Any], arrivals: list[trace.Arrival]
) -> Figure:
    plan = ctx.plan
    server = ctx.lambdalite(**settings)
    with running(server):
        ctx.note_sandbox("replay", server)
        lam = server.client()
        sleeper = packages.zip_source(packages.SLEEPER)
        longest: dict[str, float] = {}
        for a in arrivals:
            longest[a.function.name] = max(longest.get(a.function.name, 0.0), a.duration_ms)
        memory = {a.function.name: a.function.memory_size for a in arrivals}
        for name, ms in sorted(longest.items()):
            timeout = max(3, int(ms / 1000) + 10)
            create_function(
                lam, name, sleeper, plan.runtime, memory_mb=memory[name], timeout_s=timeout
            )
        tally = asyncio.run(_replay(server, arrivals, memory))
    values: dict[str, Any] = {
        "invocations": tally.arrivals,
        "warmup_invocations": tally.warmup_arrivals,
        "warmup_failures": tally.warmup_failures,
        "functions": len(longest),
        "completed": tally.completed,
        "errors": tally.errors,
        "throttles": tally.throttles,
        "cold_starts": tally.colds,
        "restores": tally.restores,
        "cold_start_pct": round(100 * (tally.colds + tally.restores) / max(1, tally.arrivals), 3),
        "first_invocation_cold_starts": tally.first_colds,
        "idle_gb_s_trace_time": round(tally.idle_gb_s * plan.compression, 1),
        "idle_env_s_trace_time": round(tally.idle_env_s * plan.compression, 1),
        "peak_environments": tally.peak_envs,
        "compression": plan.compression,
        "settings": settings,
        "p50_ms": summarize(tally.latencies).get("p50_ms"),
        "p99_ms": summarize(tally.latencies).get("p99_ms"),
        "n": len(tally.latencies),
        "overhead_p50_ms": summarize(tally.overheads).get("p50_ms"),
        "overhead_p99_ms": summarize(tally.overheads).get("p99_ms"),
        "send_lag_p99_ms": summarize(tally.lags).get("p99_ms"),
    }
    values["display"] = (
        f"cold {values['cold_start_pct']:.2f}% of {tally.arrivals} ({tally.first_colds} first "
        f"calls), overhead p50 {values['overhead_p50_ms']:.1f} ms p99 "
        f"{values['overhead_p99_ms']:.1f} ms, "
        f"{tally.throttles} throttled, idle {values['idle_gb_s_trace_time']:,.0f} GB-s"
    )
    note = f"{tally.errors} errors, first: {tally.first_error}" if tally.errors else ""
    return Figure(
        f"replay.{policy.name}", "replay", policy.label, "lambdalite", values=values, note=note
    )


async def _replay(
    server: ChildServer, arrivals: list[trace.Arrival], memory: dict[str, int]
) -> Tally:
    loop = asyncio.get_running_loop()
    tally = Tally()
    inflight: Counter[str] = Counter()
    seen: set[str] = set()
    idle_conns: list[AsyncHttpConnection] = []
    done = asyncio.Event()

    async def fire(arrival: trace.Arrival, scheduled: float) -> None:
        name = arrival.function.name
        first = name not in seen
        seen.add(name)
        conn = idle_conns.pop() if idle_conns else AsyncHttpConnection("127.0.0.1", server.port)
        body = json.dumps({"ms": round(arrival.duration_ms, 3)}).encode()
        raw = invoke_request(server.port, name, body, tail=True)
        inflight[name] += 1
        if not arrival.warmup:
            tally.lags.append((loop.time() - scheduled) * 1000)
        try:
            response = await asyncio.wait_for(conn.send(raw), timeout=120)
        except (HttpError, asyncio.TimeoutError) as exc:
            if arrival.warmup:
                tally.warmup_failures += 1
                return
            tally.errors += 1
            tally.first_error = tally.first_error or f"{type(exc).__name__}: {exc}"
            await conn.close()
            return
        finally:
            inflight[name] -= 1
        idle_conns.append(conn)
        latency = (loop.time() - scheduled) * 1000
        kind = init_kind(tail_log(response))
        if kind and first and not arrival.warmup:
            tally.first_colds += 1
        if arrival.warmup:
            tally.warmup_failures += response.status != 200
            return
        if response.status == 429:
            tally.throttles += 1
            return
        if response.status != 200 or "x-amz-function-error" in response.headers:
            tally.errors += 1
            tally.first_error = (
                tally.first_error or f"HTTP {response.status} {response.body[:200]!r}"
            )
            return
        tally.completed += 1
        tally.latencies.append(latency)
        tally.overheads.append(latency - arrival.duration_ms)
        if kind == "init":
            tally.colds += 1
        elif kind == "restore":
            tally.restores += 1

    async def sample() -> None:
        last = start
        while not done.is_set():
            await asyncio.sleep(0.25)
            envs = await asyncio.to_thread(
                lambda: Counter(procs.environment_count(server.endpoint))
            )
            now = loop.time()
            if now <= start:
                continue  # warm-up: not scored
            dt, last = now - last, now
            tally.peak_envs = max(tally.peak_envs, sum(envs.values()))
            for name, count in envs.items():
                idle = max(0, count - inflight[name])
                tally.idle_env_s += idle * dt
                tally.idle_gb_s += idle * memory.get(name, 128) / 1024 * dt

    warmup_s = max(0.0, -min((a.at_s for a in arrivals), default=0.0))
    start = loop.time() + 0.5 + warmup_s  # the measured slice begins here
    sampler = asyncio.create_task(sample())
    tasks = []
    for arrival in arrivals:
        at = start + arrival.at_s
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if arrival.warmup:
            tally.warmup_arrivals += 1
        else:
            tally.arrivals += 1
        tasks.append(asyncio.create_task(fire(arrival, at)))
    await asyncio.gather(*tasks)
    done.set()
    await sampler
    for conn in idle_conns:
        await conn.close()
    return tally


def _skip(policy: Policy, why: str) -> Figure:
    return skipped(f"replay.{policy.name}", "replay", policy.label, "lambdalite", why)
