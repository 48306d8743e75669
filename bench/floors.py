"""The floors: what the machine itself costs, measured in the same run as everything else.

No platform can start a Python environment faster than the interpreter starts, or fork a
prepared parent faster than a bare fork, or answer over loopback faster than a round trip or
a bare HTTP server. Absolute numbers move with the machine and its load; a figure's ratio to
its floor measured minutes apart on the same machine moves much less.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from bench.context import Context
from bench.figures import Figure
from bench.lambda_api import invoke_request
from bench.stats import summarize

HELPER = Path(__file__).resolve().parent / "floor_helper.py"
BODY = b'{"k": 1}'


def run(ctx: Context) -> None:
    ctx.log(f"floors: python -S -c pass ({ctx.interpreter})")
    ctx.results.add(python_startup(ctx))
    ctx.log("floors: fork of a warm parent")
    ctx.results.add(bare_fork(ctx))
    ctx.log("floors: loopback round trip")
    ctx.results.add(loopback(ctx))
    ctx.log("floors: bare HTTP echo server")
    ctx.results.add(echo_server(ctx))


def python_startup(ctx: Context) -> Figure:
    """``python -S -c pass`` from spawn to exit, with the real interpreter (no pyenv shim)."""
    argv = [ctx.interpreter, "-S", "-c", "pass"]
    devnull = os.open(os.devnull, os.O_RDWR)
    samples: list[float] = []
    try:
        for _ in range(ctx.plan.python_s_samples + 2):
            start = time.perf_counter()
            pid = os.posix_spawn(argv[0], argv, {}, file_actions=_quiet(devnull))
            os.waitpid(pid, 0)
            samples.append((time.perf_counter() - start) * 1000)
    finally:
        os.close(devnull)
    values = summarize(samples[2:])  # the first runs warm the page cache
    values["interpreter"] = ctx.interpreter
    return Figure("floors.python_s", "floors", "python -S -c pass", "floor", values=values)


def _quiet(devnull: int) -> list[tuple[int, int, int]]:
    return [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1)]


def bare_fork(ctx: Context) -> Figure:
    """Request → fork of a warm parent (``gc.freeze()``d) → first byte from the child."""
    proc = subprocess.Popen(
        [ctx.interpreter, str(HELPER), "fork"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    request, reply = proc.stdin.fileno(), proc.stdout.fileno()
    samples: list[float] = []
    try:
        for i in range(ctx.plan.fork_samples + 5):
            start = time.perf_counter()
            os.write(request, b"f")
            if os.read(reply, 1) != b"r":
                raise RuntimeError("fork helper did not answer")
            if i >= 5:
                samples.append((time.perf_counter() - start) * 1000)
            time.sleep(0.001)  # let the parent reap the child outside the timed path
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
        proc.stdout.close()
    return Figure(
        "floors.fork",
        "floors",
        "fork of a warm Python parent to first reply",
        "floor",
        values=summarize(samples),
    )


def loopback(ctx: Context) -> Figure:
    """One byte there and back between two processes over 127.0.0.1 TCP."""
    proc = subprocess.Popen(
        [ctx.interpreter, str(HELPER), "echo"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    samples: list[float] = []
    try:
        port = int(proc.stdout.readline())
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(ctx.plan.loopback_samples + 100):
                start = time.perf_counter()
                conn.sendall(b"p")
                if conn.recv(1) != b"p":
                    raise RuntimeError("loopback helper did not echo")
                if i >= 100:
                    samples.append((time.perf_counter() - start) * 1000)
    finally:
        proc.wait(timeout=10)
        proc.stdout.close()
    return Figure(
        "floors.loopback", "floors", "loopback TCP round trip", "floor", values=summarize(samples)
    )


def echo_server(ctx: Context) -> Figure:
    """The bare HTTP echo server at concurrency 1, through the suite's own client."""
    echo = ctx.echo()
    conn = echo.connection()
    raw = _invoke_request(echo.port)
    try:
        for _ in range(200):
            conn.send(raw)
        samples = []
        for _ in range(ctx.plan.echo_samples):
            start = time.perf_counter()
            response = conn.send(raw)
            samples.append((time.perf_counter() - start) * 1000)
            if response.status != 200 or response.body != BODY:
                raise RuntimeError(f"echo server answered {response.status}")
    finally:
        conn.close()
    return Figure(
        "floors.echo",
        "floors",
        "bare HTTP echo server (uvicorn + httptools), c=1",
        "echo",
        values=summarize(samples),
    )


def _invoke_request(port: int) -> bytes:
    return invoke_request(port, "warm", BODY)
