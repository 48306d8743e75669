"""Cold starts: client-observed latency of the first Invoke of a brand-new environment.

Every sample deploys a new function and invokes it once over an already open connection, so
no environment, pooled or warm, can serve it, and the figure is what a client waits for when
a new environment is needed: placement, the sandbox, interpreter start, the runtime client,
the handler's imports and the invocation itself. Where the server writes REPORT lines, the
server-side ``Init Duration`` (or ``Restore Duration``) is reported next to it.

Variants: each sandbox backend (``process``; ``namespace`` once it isolates), the hello world
with ``boto3`` imported at module level, both again from a SnapStart snapshot once publishing
with SnapStart turns optimization on, and the first invocation of a version with one
provisioned environment once the server implements provisioned concurrency. Each variant
checks for its feature with a probe and is skipped, with the reason, when it is missing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from bench import packages
from bench.context import Context
from bench.figures import Figure, failed, skipped
from bench.lambda_api import (
    create_function,
    describe_failure,
    invoke_request,
    publish,
    report_durations,
    succeeded,
)
from bench.servers import ChildServer, ServerError
from bench.stats import summarize

SECTION = "cold"
NAMESPACES = ("pid", "mnt", "net", "user", "uts", "ipc")


def run(ctx: Context) -> None:
    for sandbox in ("process", "namespace"):
        server = ctx.lambdalite(sandbox=sandbox)
        try:
            server.start()
        except ServerError as exc:
            _skip_all(ctx, "lambdalite", sandbox, f"sandbox={sandbox} unavailable: {exc}")
            continue
        ctx.note_sandbox(f"cold.{sandbox}", server)
        try:
            probe = probe_environment(server, ctx.plan.runtime, "probe")
            isolated = isolated_kinds(probe)
            ctx.info[f"probe.{sandbox}"] = {"isolated_namespaces": isolated, "probe": probe}
            if sandbox == "namespace" and not isolated:
                why = (
                    "sandbox=namespace is not in effect yet: environments ran in the host's "
                    "namespaces"
                )
                _skip_all(ctx, "lambdalite", sandbox, why)
                continue
            measure(ctx, server, "lambdalite", sandbox, ctx.interpreter_for)
        finally:
            server.stop()


def measure(
    ctx: Context,
    server: ChildServer,
    system: str,
    sandbox: str,
    interpreter_for: Callable[[str], str | None],
    samples: int | None = None,
    boto3_samples: int | None = None,
) -> None:
    """Every cold-start variant against one running server.

    ``interpreter_for`` names the interpreter that will run a runtime's functions (to compile
    the boto3 package for it).
    """
    plan = ctx.plan
    n_hello = plan.cold_samples if samples is None else samples
    n_boto3 = plan.cold_boto3_samples if boto3_samples is None else boto3_samples
    tag = f"{system}.{sandbox}" if sandbox else system
    where = f", sandbox={sandbox}" if sandbox else ""
    runtime = plan.runtime
    hello = packages.zip_source(packages.HELLO)
    ctx.log(f"cold: {system}{where}: hello world x{n_hello}")
    label = f"hello world{where}"
    ctx.results.add(
        series(ctx, server, f"cold.hello.{tag}", label, system, runtime, hello, n_hello)
    )
    with_boto3 = _boto3(ctx, interpreter_for, runtime)
    ctx.log(f"cold: {system}{where}: boto3 imported x{n_boto3}")
    label = f"boto3 imported{where}"
    figure = series(ctx, server, f"cold.boto3.{tag}", label, system, runtime, with_boto3, n_boto3)
    ctx.results.add(figure)
    snap_runtime = snapstart_runtime(runtime)
    why = snapstart_unavailable(server, snap_runtime, f"snapcheck-{sandbox or 'x'}")
    for variant, n in (("hello", n_hello), ("boto3", n_boto3)):
        key = f"cold.snapstart_{variant}.{tag}"
        label = f"SnapStart, {variant}{where} ({snap_runtime})"
        if why:
            ctx.results.add(skipped(key, SECTION, label, system, why))
            continue
        package = hello if variant == "hello" else _boto3(ctx, interpreter_for, snap_runtime)
        ctx.log(f"cold: {system}{where}: SnapStart {variant} x{n}")
        figure = series(ctx, server, key, label, system, snap_runtime, package, n, snapstart=True)
        ctx.results.add(figure)
    key, label = f"cold.provisioned_hello.{tag}", f"provisioned concurrency, hello{where}"
    why = provisioned_unavailable(server, runtime, f"pccheck-{sandbox or 'x'}")
    if why:
        ctx.results.add(skipped(key, SECTION, label, system, why))
    else:
        ctx.log(f"cold: {system}{where}: provisioned concurrency x{n_hello}")
        figure = series(ctx, server, key, label, system, runtime, hello, n_hello, provisioned=True)
        ctx.results.add(figure)


def snapstart_runtime(runtime: str) -> str:
    """SnapStart for Python needs python3.12 or later on AWS; older runtimes move up to it."""
    version = tuple(int(part) for part in runtime.removeprefix("python").split("."))
    return runtime if version >= (3, 12) else "python3.12"


def _boto3(ctx: Context, interpreter_for: Callable[[str], str | None], runtime: str) -> bytes:
    interpreter = interpreter_for(runtime)
    if interpreter is None:
        raise RuntimeError(f"no interpreter for {runtime}")
    return packages.boto3_package(interpreter, ctx.scratch)


def series(
    ctx: Context,
    server: ChildServer,
    key: str,
    label: str,
    system: str,
    runtime: str,
    package: bytes,
    samples: int,
    snapstart: bool = False,
    provisioned: bool = False,
) -> Figure:
    """``samples`` first invocations of new functions (of their new published version, which
    is first initialized from a snapshot with ``snapstart``, or given one provisioned
    environment that is READY before the invocation with ``provisioned``)."""
    lam = server.client()
    conn = server.connection()
    prefix = key.replace(".", "-").replace("_", "-")
    latencies: list[float] = []
    names: list[str] = []
    failures: list[str] = []
    try:
        # An unmeasured first sample: a server may unpack a package once per package (the
        # samples share one), which is deployment work, not part of any later cold start.
        for i in range(-1, samples):
            name = f"{prefix}-{i}" if i >= 0 else f"{prefix}-first"
            create_function(lam, name, package, runtime, snapstart=snapstart)
            qualifier = publish(lam, name)[0] if snapstart or provisioned else None
            if provisioned and qualifier:
                provision(lam, name, qualifier)
            if i >= 0:
                names.append(name)
            raw = invoke_request(server.port, name, b"{}", qualifier)
            time.sleep(0.05)  # let the control plane's own work settle
            start = time.perf_counter()
            response = conn.send(raw)
            elapsed = (time.perf_counter() - start) * 1000
            if not succeeded(response):
                failures.append(describe_failure(response))
            elif i >= 0:
                latencies.append(elapsed)
    except Exception as exc:
        return failed(key, SECTION, label, system, f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()
    if not latencies:
        return failed(key, SECTION, label, system, "; ".join(failures[:3]) or "no samples")
    values = summarize(latencies)
    values["failures"] = len(failures)
    reported = report_durations(server.client("logs"), names)
    kind = "restore" if snapstart and reported["restore"] else "init"
    if reported[kind]:
        server_side = summarize(reported[kind])
        values[f"server_{kind}_p50_ms"] = server_side["p50_ms"]
        values[f"server_{kind}_p99_ms"] = server_side["p99_ms"]
        values[f"server_{kind}_n"] = server_side["n"]
    notes = [f"{len(failures)} failed: {failures[0]}"] if failures else []
    if provisioned and reported["init"]:
        notes.append(
            f"{len(reported['init'])} of {len(latencies)} reported an Init Duration: the "
            "provisioned environment was not initialized ahead"
        )
    return Figure(key, SECTION, label, system, values=values, note="; ".join(notes))


def probe_environment(server: ChildServer, runtime: str, name: str) -> dict[str, Any]:
    """What an environment of this server looks like from inside (see ``packages.PROBE``)."""
    lam = server.client()
    create_function(lam, name, packages.zip_source(packages.PROBE), runtime)
    conn = server.connection()
    try:
        response = conn.send(invoke_request(server.port, name, b"{}"))
    finally:
        conn.close()
    if not succeeded(response):
        raise RuntimeError(f"probe failed: {describe_failure(response)}")
    result: dict[str, Any] = json.loads(response.body)
    return result


def isolated_kinds(probe: dict[str, Any]) -> list[str]:
    """The namespace kinds in which the probed environment differs from this process."""
    differs = []
    for kind in NAMESPACES:
        try:
            own = os.readlink(f"/proc/self/ns/{kind}")
        except OSError:
            continue
        theirs = probe.get("ns", {}).get(kind)
        if theirs is not None and theirs != own:
            differs.append(kind)
    return differs


def snapstart_unavailable(server: ChildServer, runtime: str, name: str) -> str:
    """Why SnapStart cannot be measured on this server; empty when it can."""
    lam = server.client()
    try:
        create_function(lam, name, packages.zip_source(packages.HELLO), runtime, snapstart=True)
        _version, config = publish(lam, name)
    except Exception as exc:
        return f"SnapStart not accepted: {type(exc).__name__}: {exc}"
    status = (config.get("SnapStart") or {}).get("OptimizationStatus")
    if status != "On":
        return (
            f"SnapStart not implemented yet: a version published with ApplyOn=PublishedVersions "
            f"reports OptimizationStatus={status}"
        )
    return ""


def provision(lam: Any, name: str, qualifier: str, timeout: float = 60.0) -> str:
    """One provisioned environment for a version; its status once READY, FAILED or timed out."""
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier=qualifier, ProvisionedConcurrentExecutions=1
    )
    deadline = time.monotonic() + timeout
    while True:
        config = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        status = str(config.get("Status"))
        if status in ("READY", "FAILED") or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def provisioned_unavailable(server: ChildServer, runtime: str, name: str) -> str:
    """Why provisioned concurrency cannot be measured on this server; empty when it can."""
    lam = server.client()
    try:
        create_function(lam, name, packages.zip_source(packages.HELLO), runtime)
        version, _config = publish(lam, name)
        status = provision(lam, name, version)
    except Exception as exc:
        return f"provisioned concurrency not available: {type(exc).__name__}: {exc}"
    return "" if status == "READY" else f"provisioned concurrency did not become READY: {status}"


def _skip_all(ctx: Context, system: str, sandbox: str, why: str) -> None:
    where = f", sandbox={sandbox}"
    for variant in ("hello", "boto3", "snapstart_hello", "snapstart_boto3", "provisioned_hello"):
        key = f"cold.{variant}.{system}.{sandbox}"
        label = variant.replace("snapstart_", "SnapStart, ").replace("_", " ") + where
        label = label.replace("provisioned ", "provisioned concurrency, ")
        ctx.results.add(skipped(key, SECTION, label, system, why))
