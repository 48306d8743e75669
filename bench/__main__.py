"""``python -m bench``: every measurement of the suite, side by side, in one run.

The run starts each server it measures as a child process on a loopback port (lambdalite, a
bare HTTP echo server, MiniStack when installed), prints one table and writes the results as
JSON to ``bench/results/<UTC timestamp>.json``. A section that fails is recorded as failed
and the run goes on; the exit status is non-zero only when the run itself broke.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from bench import cold, density, floors, peer, replay, report, stream, warm
from bench.context import Context
from bench.figures import failed
from bench.plan import FULL, QUICK, SECTIONS, Plan
from lambdalite.runtimes.registry import RuntimeRegistry

RESULTS = Path(__file__).resolve().parent / "results"


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke run of a few seconds per section")
    p.add_argument("--only", default="", help=f"comma-separated sections of {','.join(SECTIONS)}")
    p.add_argument("--skip", default="", help="comma-separated sections to leave out")
    p.add_argument("--results-dir", type=Path, default=RESULTS)
    p.add_argument("--runtime", default=None, help="function runtime (default python3.11)")
    p.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a lambdalite setting for every server of the run, e.g. sandbox=process",
    )
    p.add_argument("--ministack", default=None, help="path of the ministack executable")
    p.add_argument("--memory-budget-gib", type=float, default=None)
    p.add_argument("--scale-target", type=int, default=None)
    p.add_argument("--trace", type=Path, default=None, help="Azure trace sample directory")
    p.add_argument("--replay-start", type=int, default=None, help="first trace minute (0-479)")
    p.add_argument("--replay-minutes", type=int, default=None)
    p.add_argument("--replay-seconds", type=float, default=None)
    p.add_argument("--keep-scratch", action="store_true", help="keep server logs and data")
    return p.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else FULL
    overrides = {
        "runtime": args.runtime,
        "memory_budget_gib": args.memory_budget_gib,
        "scale_target": args.scale_target,
        "replay_start_minute": args.replay_start,
        "replay_minutes": args.replay_minutes,
        "replay_seconds": args.replay_seconds,
    }
    return plan.replace(**{k: v for k, v in overrides.items() if v is not None})


def sections(args: argparse.Namespace) -> set[str]:
    chosen = {s for s in args.only.split(",") if s} or set(SECTIONS)
    chosen -= {s for s in args.skip.split(",") if s}
    unknown = chosen - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown sections: {', '.join(sorted(unknown))}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    plan = make_plan(args)
    chosen = sections(args)
    settings = dict(item.split("=", 1) for item in args.setting)
    command = RuntimeRegistry(settings.get("python_runtimes", "")).resolve(plan.runtime)
    if command is None:
        raise SystemExit(f"no interpreter found for {plan.runtime}")
    _raise_file_limit()
    started = datetime.now(timezone.utc)
    scratch = Path(tempfile.mkdtemp(prefix="lambdalite-bench-"))
    ctx = Context(plan, scratch, command.interpreter, settings)
    ctx.ministack, ctx.ministack_missing = peer.locate(args.ministack)
    ctx.log(
        f"{plan.mode} run of {', '.join(s for s in SECTIONS if s in chosen)}; scratch {scratch}"
    )
    steps: list[tuple[str, Callable[[], None]]] = [
        ("floors", lambda: floors.run(ctx)),
        ("cold", lambda: cold.run(ctx)),
        ("warm", lambda: warm.run(ctx, chosen)),
        ("stream", lambda: stream.run(ctx)),
        ("scale", lambda: density.run(ctx)),
        ("replay", lambda: replay.run(ctx, args.trace)),
        ("peer", lambda: peer.run(ctx, chosen)),
    ]
    try:
        for name, step in steps:
            wanted = name in chosen or (name == "warm" and "throughput" in chosen)
            if wanted:
                _guarded(ctx, name, step)
    finally:
        ctx.close()
    report.compare(ctx.results)
    report.targets(ctx.results)
    print(report.table(ctx.results))
    path = report.write(report.document(ctx, plan, started, argv), args.results_dir, started)
    print(f"\nresults: {path}")
    if args.keep_scratch:
        print(f"server logs and data: {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _guarded(ctx: Context, name: str, step: Callable[[], None]) -> None:
    """Run one section; a crash is recorded as a failed figure instead of ending the run."""
    try:
        step()
    except Exception as exc:
        ctx.log(f"{name} failed:\n{traceback.format_exc()}")
        ctx.results.add(failed(f"{name}.error", name, f"{name} section", "lambdalite", repr(exc)))


def _raise_file_limit() -> None:
    """Thousands of environments and connections need more than the usual 1,024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


if __name__ == "__main__":
    sys.exit(main())
