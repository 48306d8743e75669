"""Warm invokes at concurrency 1 next to the echo server, and throughput at 1, 8 and 64.

Warm latency is measured in alternating blocks (echo server, then the platform, then the echo
server again ...) over the same client and the same request bytes, so both see the same
machine at the same moments; the difference and the ratio of the two are the figures that
survive a noisy machine. Throughput is closed-loop (see ``bench.load``) against a no-op
function, with the echo server's throughput at the same concurrency as its ceiling.
"""

from __future__ import annotations

import time

from bench import load, packages
from bench.context import Context
from bench.figures import Figure, failed
from bench.httpclient import HttpConnection
from bench.lambda_api import create_function, describe_failure, invoke_request, succeeded
from bench.servers import ChildServer, running
from bench.stats import summarize

BODY = b'{"k": 1}'
FUNCTIONS = {
    "warm": packages.ECHO,
    "warm-logging": packages.ECHO_LOGGING,
    "noop": packages.NOOP,
}


def run(ctx: Context, sections: set[str]) -> None:
    server = ctx.lambdalite()
    with running(server):
        ctx.note_sandbox("warm", server)
        deploy(ctx, server)
        if "warm" in sections:
            measure_warm(ctx, server, "lambdalite")
        if "throughput" in sections:
            measure_throughput(ctx, server, "lambdalite", ctx.plan.load_seconds)
            measure_echo_throughput(ctx)


def deploy(ctx: Context, server: ChildServer) -> None:
    lam = server.client()
    for name, source in FUNCTIONS.items():
        create_function(lam, name, packages.zip_source(source), ctx.plan.runtime)


def measure_warm(
    ctx: Context, server: ChildServer, system: str, samples: int | None = None
) -> None:
    plan = ctx.plan
    total = plan.warm_samples if samples is None else samples
    block = max(1, min(plan.warm_block, total))
    echo = ctx.echo()
    raw_echo = invoke_request(echo.port, "warm", BODY)
    raw_invoke = invoke_request(server.port, "warm", BODY)
    ctx.log(f"warm: {system} Invoke vs echo server, c=1, {total} samples each")
    echo_conn, conn = echo.connection(), server.connection()
    echo_ms: list[float] = []
    invoke_ms: list[float] = []
    try:
        _repeat(echo_conn, raw_echo, min(200, total), [])
        _repeat(conn, raw_invoke, min(200, total), [])  # the environment exists and is warm
        while len(invoke_ms) < total:
            _repeat(echo_conn, raw_echo, block, echo_ms)
            _repeat(conn, raw_invoke, block, invoke_ms)
    except RuntimeError as exc:
        ctx.results.add(
            failed(f"warm.invoke.{system}", "warm", "warm Invoke, c=1", system, str(exc))
        )
        return
    finally:
        echo_conn.close()
        conn.close()
    ctx.results.add(
        Figure(
            f"warm.echo.{system}",
            "warm",
            f"echo server, interleaved with {system}",
            "echo",
            values=summarize(echo_ms),
        )
    )
    ctx.results.add(
        Figure(
            f"warm.invoke.{system}", "warm", "warm Invoke, c=1", system, values=summarize(invoke_ms)
        )
    )
    n_logging = max(1, total * plan.warm_logging_samples // plan.warm_samples)
    raw_logging = invoke_request(server.port, "warm-logging", BODY)
    conn = server.connection()
    logging_ms: list[float] = []
    try:
        _repeat(conn, raw_logging, min(20, n_logging), [])
        _repeat(conn, raw_logging, n_logging, logging_ms)
    except RuntimeError as exc:
        ctx.results.add(
            failed(
                f"warm.logging.{system}", "warm", "warm Invoke, handler prints", system, str(exc)
            )
        )
        return
    finally:
        conn.close()
    ctx.results.add(
        Figure(
            f"warm.logging.{system}",
            "warm",
            "warm Invoke, handler prints a line",
            system,
            values=summarize(logging_ms),
        )
    )


def _repeat(conn: HttpConnection, raw: bytes, count: int, into: list[float]) -> None:
    for _ in range(count):
        start = time.perf_counter()
        response = conn.send(raw)
        into.append((time.perf_counter() - start) * 1000)
        if not succeeded(response):
            raise RuntimeError(describe_failure(response))


def measure_throughput(ctx: Context, server: ChildServer, system: str, seconds: float) -> None:
    raw = invoke_request(server.port, "noop", b"{}")
    for level in ctx.plan.levels:
        ctx.log(f"throughput: {system} no-op, c={level}, {seconds:g}s")
        result = load.closed_loop(server.port, raw, level, ctx.plan.load_warmup_s, seconds)
        note = f"first error: {result.first_error}" if result.first_error else ""
        ctx.results.add(
            Figure(
                f"throughput.c{level}.{system}",
                "throughput",
                f"no-op invokes/s, c={level}",
                system,
                values=result.values(),
                note=note,
            )
        )


def measure_echo_throughput(ctx: Context) -> None:
    echo = ctx.echo()
    raw = invoke_request(echo.port, "noop", b"{}")
    for level in ctx.plan.levels:
        ctx.log(f"throughput: echo server, c={level}")
        result = load.closed_loop(
            echo.port, raw, level, ctx.plan.load_warmup_s, ctx.plan.load_seconds
        )
        ctx.results.add(
            Figure(
                f"throughput.c{level}.echo",
                "throughput",
                f"echo requests/s, c={level}",
                "echo",
                values=result.values(),
            )
        )
