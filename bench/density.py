"""Scale-up (0 → N concurrent environments of one function) and idle-environment density.

Both rest on a barrier: the function connects back to the benchmark and blocks until
released, so "N environments at once" is observed, not inferred: the moment the N-th
invocation checks in, N environments exist and run concurrently. Scale-up fires all N
invocations at once, as a burst of traffic would. Density then grows the same function's
pool gently (a bounded number of environments starting at a time), releases the barrier so
every environment goes idle, and reads the PSS of every process the server started (runtime
processes, and whatever supervises them) and of the server itself.

Memory is the limit of this section: it stops at a budget (default 60% of the memory
available when the run starts) and says so, rather than pushing the machine into swap or the
OOM killer.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from bench import packages, procs
from bench.context import Context
from bench.figures import Figure, skipped
from bench.httpclient import AsyncHttpConnection, HttpError
from bench.lambda_api import create_function, describe_failure, invoke_request, succeeded
from bench.servers import ChildServer, running

GIB_KIB = 1024 * 1024


@dataclass
class Round:
    fired: int = 0
    checked_in: int = 0
    failures: int = 0
    first_error: str = ""
    ready_s: float = 0.0  # until every fired invocation checked in (or failed)
    done_s: float = 0.0  # until every answer arrived after the release


@dataclass
class Snapshot:
    environments: int  # runtime processes
    env: procs.Memory  # every process the server started: runtimes, supervisors, zygotes
    runtimes: procs.Memory  # the runtime processes alone
    server: procs.Memory

    def values(self) -> dict[str, Any]:
        total_kib = self.env.pss_kib + self.server.pss_kib
        per_env = self.env.pss_kib / self.environments if self.environments else 0.0
        return {
            "environments": self.environments,
            "env_pss_mib": round(self.env.pss_kib / 1024, 1),
            "env_rss_mib": round(self.env.rss_kib / 1024, 1),
            "runtime_pss_mib": round(self.runtimes.pss_kib / 1024, 1),
            "server_pss_mib": round(self.server.pss_kib / 1024, 1),
            "per_env_pss_mib": round(per_env / 1024, 2),
            "per_env_private_mib": round(
                self.env.private_kib / max(1, self.environments) / 1024, 2
            ),
            "envs_per_gib": round(self.environments / (total_kib / GIB_KIB), 1) if total_kib else 0,
        }


def run(ctx: Context) -> None:
    plan = ctx.plan
    budget_kib = int(plan.memory_budget_gib * GIB_KIB) or int(procs.mem_available_kib() * 0.6)
    ctx.info["density_budget_gib"] = round(budget_kib / GIB_KIB, 2)
    limit = max(plan.scale_target, *plan.density_steps) + plan.density_probe + 100
    # The server's idle memory budget counts configured MemorySize (128 MB each here), far
    # above what an idle environment really uses: lift it, so the machine's memory is the
    # limit being measured.
    server = ctx.lambdalite(account_concurrency=limit, keep_alive=3600, idle_memory_mb=1 << 30)
    with running(server):
        ctx.note_sandbox("scale", server)
        lam = server.client()
        barrier = packages.zip_source(packages.BARRIER)
        for name in ("density-probe", "scale"):
            create_function(lam, name, barrier, plan.runtime, timeout_s=900)
        ctx.log(f"density: {plan.density_probe} environments to size one")
        asyncio.run(hold(server, "density-probe", plan.density_probe, plan.start_window, 120))
        probe = snapshot(server)
        # What one more environment costs: its own processes. The rest (zygotes, sandboxes
        # forked ahead of need, more of them right after a burst) does not grow with the count.
        per_env_kib = max(1, probe.runtimes.pss_kib // max(1, probe.environments))
        room = budget_kib - probe.env.pss_kib - probe.server.pss_kib
        target = min(plan.scale_target, max(1, int(room / per_env_kib * 0.9)))
        note = "" if target == plan.scale_target else f"reduced from {plan.scale_target} to fit"
        ctx.log(f"scale-up: 0 -> {target} concurrent environments of one function")
        burst = asyncio.run(hold(server, "scale", target, None, plan.scale_timeout_s))
        ctx.results.add(_scale_figure(target, burst, note))
        state = snapshot(server)
        ctx.results.add(_density_figure(state, burst.ready_s))
        for step in plan.density_steps:
            env_count = state.environments
            if step <= env_count - probe.environments:
                continue
            projected = state.env.pss_kib + state.server.pss_kib + (step - env_count) * per_env_kib
            if projected > budget_kib:
                why = (
                    f"stopped at {env_count} environments: {step} would need about "
                    f"{projected / GIB_KIB:.1f} GiB, over the {budget_kib / GIB_KIB:.1f} GiB budget"
                )
                ctx.results.add(
                    skipped(f"density.{step}", "density", f"{step} idle", "lambdalite", why)
                )
                break
            ctx.log(f"density: ramping the pool to {step} environments")
            ramp = asyncio.run(
                hold(server, "scale", step, plan.start_window, plan.scale_timeout_s * 3)
            )
            state = snapshot(server)
            ctx.results.add(_density_figure(state, ramp.ready_s, step))
            if ramp.failures:
                break


async def hold(
    server: ChildServer, function: str, count: int, window: int | None, timeout: float
) -> Round:
    """``count`` concurrent invocations held at the barrier, then released.

    ``window`` bounds how many invocations may be waiting for an environment at once (None:
    all of them fire immediately).
    """
    loop = asyncio.get_running_loop()
    result = Round()
    release = asyncio.Event()

    async def check_in(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readexactly(1)
            result.checked_in += 1
            await release.wait()
            writer.write(b"x")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(check_in, "127.0.0.1", 0, backlog=4096)
    port = listener.sockets[0].getsockname()[1]
    raw = invoke_request(
        server.port, function, json.dumps({"host": "127.0.0.1", "port": port}).encode()
    )

    async def invoke() -> None:
        conn = AsyncHttpConnection("127.0.0.1", server.port)
        try:
            response = await conn.send(raw)
            if not succeeded(response):
                result.failures += 1
                result.first_error = result.first_error or describe_failure(response)
        except HttpError as exc:
            result.failures += 1
            result.first_error = result.first_error or str(exc)
        finally:
            await conn.close()

    start = loop.time()
    deadline = start + timeout
    tasks = []
    try:
        while result.fired < count and loop.time() < deadline:
            waiting = result.fired - result.checked_in - result.failures
            if window is not None and waiting >= window:
                await asyncio.sleep(0.002)
                continue
            tasks.append(asyncio.create_task(invoke()))
            result.fired += 1
            if window is None and result.fired % 50 == 0:
                await asyncio.sleep(0)
        while result.checked_in + result.failures < result.fired and loop.time() < deadline:
            await asyncio.sleep(0.002)
        result.ready_s = loop.time() - start
    finally:
        release.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=300)
        result.done_s = loop.time() - start
        listener.close()
    await asyncio.sleep(0.5)  # answers sent; let every environment settle into idle
    return result


def snapshot(server: ChildServer) -> Snapshot:
    """Memory of everything the server started, with the runtime processes counted apart.

    An environment may be more than its runtime process (a supervisor inside the sandbox, a
    shared zygote), so the environments' memory is that of every descendant of the server;
    the number of environments is what the server lists, and the runtimes' memory that of the
    processes of those environments.
    """
    runtimes = procs.function_processes(server.endpoint)
    env, runtime = procs.Memory(), procs.Memory()
    for pid in procs.descendants(server.pid):
        used = procs.memory(pid)
        env = env + used
        if pid in runtimes:
            runtime = runtime + used
    count = sum(procs.environment_count(server.endpoint).values())
    return Snapshot(count, env, runtime, procs.memory(server.pid))


def _scale_figure(target: int, burst: Round, note: str) -> Figure:
    if burst.failures:
        note = f"{note}; " if note else ""
        note += f"{burst.failures} of {burst.fired} failed: {burst.first_error}"
    values = {
        "target": target,
        "reached": burst.checked_in,
        "failures": burst.failures,
        "seconds_to_all_running": round(burst.ready_s, 3),
        "seconds_to_all_answered": round(burst.done_s, 3),
        "display": f"{burst.checked_in}/{target} running after {burst.ready_s:.2f} s",
    }
    return Figure(
        "scale.burst",
        "scale-up",
        f"0 -> {target} concurrent environments",
        "lambdalite",
        values=values,
        note=note,
    )


def _density_figure(state: Snapshot, ramp_s: float, step: int | None = None) -> Figure:
    values = state.values()
    values["ramp_seconds"] = round(ramp_s, 2)
    per_env = values["per_env_pss_mib"]
    values["display"] = (
        f"{state.environments} idle: {values['envs_per_gib']:.0f}/GiB, {per_env:.1f} MiB PSS each"
    )
    if step is not None:
        values["step"] = step
    key = f"density.{state.environments}"
    label = f"{state.environments} idle environments held"
    return Figure(key, "density", label, "lambdalite", values=values)
