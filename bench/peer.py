"""The peer: the same cold, warm and throughput measurements against MiniStack.

MiniStack (PyPI ``ministack``) emulates AWS services in one Python process and runs Python
Lambda functions as worker subprocesses of its own interpreter, one per concurrent
invocation, kept warm between invocations. ``bench/install-peer`` installs it into
``bench/.peer``; without it this section is skipped with that instruction.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench import cold, warm
from bench.context import Context
from bench.figures import skipped
from bench.servers import ServerError, ministack

SYSTEM = "ministack"
PEER_DIR = Path(__file__).resolve().parent / ".peer"
KEYS = (
    ("cold.hello.ministack", "cold", "hello world"),
    ("cold.boto3.ministack", "cold", "boto3 imported"),
    ("warm.invoke.ministack", "warm", "warm Invoke, c=1"),
    ("throughput.c64.ministack", "throughput", "no-op invokes/s"),
)


def locate(explicit: str | None) -> tuple[Path | None, str]:
    """The ``ministack`` executable, or None and why not."""
    if explicit:
        path = Path(explicit)
        return (path, "") if path.exists() else (None, f"{explicit} does not exist")
    for candidate in (PEER_DIR / "bin" / "ministack", shutil.which("ministack")):
        if candidate and Path(candidate).exists():
            return Path(candidate), ""
    return None, "ministack is not installed: run bench/install-peer (installs it in bench/.peer)"


def interpreter_of(executable: Path) -> str:
    """The interpreter a console script runs with (its shebang), which also runs functions."""
    with open(executable, "rb") as fh:
        first = fh.readline().decode(errors="replace").strip()
    if first.startswith("#!"):
        return first[2:].split()[0]
    return str(executable.parent / "python")


def version_of(executable: Path) -> str:
    site = list(executable.parent.parent.glob("lib/python*/site-packages/ministack-*.dist-info"))
    return site[0].name.removesuffix(".dist-info").split("-", 1)[1] if site else "unknown"


def run(ctx: Context, sections: set[str]) -> None:
    if ctx.ministack is None:
        for key, section, label in KEYS:
            ctx.results.add(skipped(key, section, label, SYSTEM, ctx.ministack_missing))
        return
    executable = ctx.ministack
    ctx.info["ministack"] = {"executable": str(executable), "version": version_of(executable)}
    server = ministack(ctx.scratch, executable)
    try:
        server.start()
    except ServerError as exc:
        for key, section, label in KEYS:
            ctx.results.add(skipped(key, section, label, SYSTEM, f"ministack did not start: {exc}"))
        return
    plan = ctx.plan
    try:
        interpreter = interpreter_of(executable)  # ministack runs every runtime with it
        if "cold" in sections:
            cold.measure(
                ctx,
                server,
                SYSTEM,
                "",
                lambda _runtime: interpreter,
                samples=plan.peer_cold_samples,
                boto3_samples=plan.peer_cold_boto3_samples,
            )
        warm.deploy(ctx, server)
        if "warm" in sections:
            warm.measure_warm(ctx, server, SYSTEM, samples=plan.peer_warm_samples)
        if "throughput" in sections:
            warm.measure_throughput(ctx, server, SYSTEM, plan.peer_load_seconds)
    finally:
        server.stop()
