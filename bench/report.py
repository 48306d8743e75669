"""Comparisons, the issue's targets, the printed table and the JSON results file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import procs
from bench.context import Context
from bench.figures import OK, Comparison, Results, Target
from bench.plan import Plan

# Published AWS figures the results are set against (docs/benchmarks.md gives the sources).
AWS_REFERENCE = {
    "python_zip_hello_init_ms": 80,
    "python_image_hello_init_ms": 170,
    "report_example_init_ms": 205.82,
    "scaling_envs_per_10s_per_function": 1000,
    "init_phase_limit_s": 10,
}


def compare(results: Results) -> None:
    """Differences and ratios; each only when both of its figures were measured."""
    v = results.value
    out = results.comparisons
    python_s, fork = v("floors.python_s", "p50_ms"), v("floors.fork", "p50_ms")
    for sandbox in ("process", "namespace"):
        cold = v(f"cold.hello.lambdalite.{sandbox}", "p50_ms")
        if cold is not None and python_s:
            out.append(
                Comparison(f"cold hello ({sandbox}) / python -S floor", cold / python_s, "x")
            )
        if cold is not None and fork:
            out.append(Comparison(f"cold hello ({sandbox}) / bare fork floor", cold / fork, "x"))
        init = v(f"cold.hello.lambdalite.{sandbox}", "server_init_p50_ms")
        if init is not None:
            aws = AWS_REFERENCE["python_zip_hello_init_ms"]
            out.append(
                Comparison(
                    f"Init Duration ({sandbox}) / AWS python zip hello init (~{aws} ms)",
                    init / aws,
                    "x",
                    f"{init:.1f} ms here",
                )
            )
    for system in ("lambdalite", "ministack"):
        invoke, echo = v(f"warm.invoke.{system}", "p50_ms"), v(f"warm.echo.{system}", "p50_ms")
        if invoke is not None and echo:
            out.append(Comparison(f"{system} warm overhead over echo, p50", invoke - echo, "ms"))
            out.append(Comparison(f"{system} warm / echo, p50", invoke / echo, "x"))
        i99, e99 = v(f"warm.invoke.{system}", "p99_ms"), v(f"warm.echo.{system}", "p99_ms")
        if i99 is not None and e99 is not None:
            out.append(Comparison(f"{system} warm overhead over echo, p99", i99 - e99, "ms"))
    for level in (1, 8, 64):
        mine, ceiling = (
            v(f"throughput.c{level}.lambdalite", "per_second"),
            v(f"throughput.c{level}.echo", "per_second"),
        )
        if mine is not None and ceiling:
            out.append(Comparison(f"lambdalite / echo throughput, c={level}", mine / ceiling, "x"))
    peer_pairs = (
        ("cold hello p50", "cold.hello.lambdalite.process", "cold.hello.ministack", "p50_ms"),
        ("cold boto3 p50", "cold.boto3.lambdalite.process", "cold.boto3.ministack", "p50_ms"),
        ("warm p50", "warm.invoke.lambdalite", "warm.invoke.ministack", "p50_ms"),
        ("throughput c=64", "throughput.c64.lambdalite", "throughput.c64.ministack", "per_second"),
    )
    for name, mine_key, peer_key, field in peer_pairs:
        mine, peer = v(mine_key, field), v(peer_key, field)
        if mine and peer:
            ratio = peer / mine if field.endswith("_ms") else mine / peer
            out.append(
                Comparison(
                    f"ministack / lambdalite, {name}", ratio, "x", "higher: lambdalite better"
                )
            )


def targets(results: Results) -> None:
    v = results.value
    add = results.targets.append
    iso = v("cold.hello.lambdalite.namespace", "p50_ms")
    add(
        _target(
            "cold start p50, isolated hello world",
            "<= 10 ms",
            iso,
            "ms",
            lambda x: x <= 10,
            "" if iso is not None else "namespace sandbox not measured",
        )
    )
    snap = next(
        (
            x
            for x in (
                v(f"cold.snapstart_boto3.lambdalite.{s}", "p50_ms")
                for s in ("namespace", "process")
            )
            if x is not None
        ),
        None,
    )
    add(
        _target(
            "SnapStart cold start p50 with boto3",
            "<= 15 ms",
            snap,
            "ms",
            lambda x: x <= 15,
            "" if snap is not None else "no SnapStart cold start measured",
        )
    )
    invoke, echo = v("warm.invoke.lambdalite", "p50_ms"), v("warm.echo.lambdalite", "p50_ms")
    overhead = invoke - echo if invoke is not None and echo is not None else None
    add(_target("warm overhead over echo, p50", "<= 0.5 ms", overhead, "ms", lambda x: x <= 0.5))
    rate = v("throughput.c64.lambdalite", "per_second")
    add(_target("invokes/s at c=64", ">= 3,000", rate, "/s", lambda x: x >= 3000))
    dens = [f for f in results.figures if f.section == "density" and f.status == OK]
    if dens:
        top = max(dens, key=lambda f: f.values["environments"])
        per_gib = float(top.values["envs_per_gib"])
        held = int(top.values["environments"])
        add(
            Target(
                "idle environments in 24 GiB",
                ">= 2,000",
                f"{held} held, {per_gib:.0f}/GiB -> {per_gib * 24:,.0f} in 24 GiB",
                per_gib * 24 >= 2000,
                "" if held >= 2000 else f"projected from {held} held",
            )
        )
    else:
        add(Target("idle environments in 24 GiB", ">= 2,000", "not measured", None))
    burst = results.get("scale.burst")
    if burst is not None and burst.status == OK:
        bv = burst.values
        met = bv["target"] >= 1000 and bv["reached"] >= 1000 and bv["seconds_to_all_running"] <= 3
        add(
            Target(
                "0 -> 1,000 environments",
                "< 3 s",
                f"{bv['reached']}/{bv['target']} in {bv['seconds_to_all_running']:.2f} s",
                met,
                burst.note,
            )
        )
    else:
        add(Target("0 -> 1,000 environments", "< 3 s", "not measured", None))
    fixed, adaptive = results.get("replay.fixed-10min"), results.get("replay.hybrid-histogram")
    if fixed and adaptive and fixed.status == OK and adaptive.status == OK:
        fv, av = fixed.values, adaptive.values
        met = (
            av["cold_starts"] < fv["cold_starts"]
            and av["idle_gb_s_trace_time"] <= fv["idle_gb_s_trace_time"]
        )
        measured = (
            f"cold {av['cold_starts']} vs {fv['cold_starts']}, idle "
            f"{av['idle_gb_s_trace_time']} vs {fv['idle_gb_s_trace_time']} GB-s"
        )
        add(
            Target(
                "adaptive keep-alive vs fixed 10 min",
                "fewer cold starts, <= idle memory",
                measured,
                met,
            )
        )
    else:
        why = adaptive.note if adaptive is not None else "replay not run"
        add(
            Target(
                "adaptive keep-alive vs fixed 10 min",
                "fewer cold starts, <= idle memory",
                "not measured",
                None,
                why,
            )
        )


def _target(
    name: str, goal: str, value: float | None, unit: str, ok: Any, note: str = ""
) -> Target:
    if value is None:
        return Target(name, goal, "not measured", None, note)
    shown = f"{value:,.0f} {unit}" if unit == "/s" else f"{value:.2f} {unit}"
    return Target(name, goal, shown, bool(ok(value)), note)


def table(results: Results) -> str:
    lines = []
    section = None
    width = max((len(f.label) for f in results.figures), default=20)
    for f in results.figures:
        if f.section != section:
            section = f.section
            lines.append(f"\n== {section}")
        note = f"  [{f.note[:110]}]" if f.note else ""
        lines.append(f"  {f.label:<{width}}  {f.system:<10}  {f.headline()}{note}")
    if results.comparisons:
        lines.append("\n== ratios and differences")
        for c in results.comparisons:
            value = "n/a" if c.value is None else f"{c.value:.2f} {c.unit}"
            detail = f"  ({c.detail})" if c.detail else ""
            lines.append(f"  {c.name:<58}  {value}{detail}")
    if results.targets:
        lines.append("\n== targets (issue 4)")
        for t in results.targets:
            mark = {True: "met", False: "MISSED", None: "n/a"}[t.met]
            note = f"  [{t.note[:90]}]" if t.note else ""
            lines.append(f"  {t.name:<40} {t.goal:<34} {t.measured:<40} {mark}{note}")
    return "\n".join(lines).lstrip("\n")


def machine(ctx: Context) -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "mem_total_gib": round(procs.mem_total_kib() / 1024 / 1024, 1),
        "kernel": platform.release(),
        "bench_python": platform.python_version(),
        "function_interpreter": ctx.interpreter,
        "lambdalite": _version("lambdalite"),
        "git": _git(),
    }


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _git() -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": commit, "modified_files": len(dirty.splitlines())}


def document(ctx: Context, plan: Plan, started: datetime, argv: list[str]) -> dict[str, Any]:
    finished = datetime.now(timezone.utc)
    return {
        "schema": "lambdalite-bench/1",
        "started": started.isoformat(timespec="seconds"),
        "seconds": round((finished - started).total_seconds(), 1),
        "mode": plan.mode,
        "argv": argv,
        "machine": machine(ctx),
        "plan": asdict(plan),
        "settings": ctx.settings,
        "info": ctx.info,
        "aws_reference": AWS_REFERENCE,
        **ctx.results.to_json(),
    }


def write(document_: dict[str, Any], directory: Path, started: datetime) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(document_, indent=2, default=str) + "\n")
    return path
