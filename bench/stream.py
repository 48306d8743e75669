"""Response streaming: time to the first streamed byte, and the bandwidth rule past 6 MB.

The functions write a first chunk at once, pause ``stream_pause_ms`` and then write the rest,
so a platform that really streams hands the caller the first chunk about one pause before the
end; one that buffers cannot. Each sample is one request on a fresh connection, timed from
the moment the request is written to the moment the first chunk's bytes arrive, and on to the
last byte. Measured for a Python generator handler and a Node.js ``streamifyResponse`` handler
(when Node.js is installed), through a ``RESPONSE_STREAM`` function URL and through
InvokeWithResponseStream, with a buffered Invoke of the same function as the contrast. The
paced figure times one 10 MB stream: AWS sends 6 MB unpaced and the rest at 2 MB/s.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from bench import packages
from bench.context import Context
from bench.figures import Figure, failed, skipped
from bench.httpclient import build_request
from bench.lambda_api import create_function, invoke_path
from bench.servers import ChildServer, running
from bench.stats import summarize
from lambdalite.runtimes.registry import NODE_RUNTIMES, RuntimeRegistry

PYTHON = """\
import os
import time

MB = 1024 * 1024
PAUSE = float(os.environ["PAUSE_MS"]) / 1000


def handler(event, context):
    size = event.get("mb")
    if size:
        return (b"x" * MB for _ in range(int(size)))
    return chunks()


def chunks():
    yield b"first;"
    time.sleep(PAUSE)
    yield b"last"
"""

NODE = """\
exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
    responseStream.write('first;');
    await new Promise((resolve) => setTimeout(resolve, Number(process.env.PAUSE_MS)));
    responseStream.end('last');
});
"""

FIRST, LAST = b"first;", b"last"
PACED_MB = 10


def run(ctx: Context) -> None:
    server = ctx.lambdalite()
    with running(server):
        ctx.note_sandbox("stream", server)
        lam = server.client()
        pause = str(ctx.plan.stream_pause_ms)
        kinds = {"python": (PYTHON, "app.handler", ctx.plan.runtime, "app.py")}
        installed = RuntimeRegistry().available()
        node = next((r for r in reversed(NODE_RUNTIMES) if r in installed), None)
        if node is not None:
            kinds["node"] = (NODE, "index.handler", node, "index.js")
        else:
            why = "no Node.js runtime installed"
            ctx.results.add(skipped("stream.node", "stream", "Node.js", "lambdalite", why))
        for kind, (source, handler, runtime, filename) in kinds.items():
            name = f"stream-{kind}"
            package = packages.zip_source(source, filename)
            create_function(lam, name, package, runtime, environment={"PAUSE_MS": pause})
            _set_handler(lam, name, handler)
            url = _stream_url(lam, name)
            measure(ctx, server, kind, name, url)
        measure_paced(ctx, server)


def _set_handler(lam: Any, name: str, handler: str) -> None:
    if handler != "app.handler":
        lam.update_function_configuration(FunctionName=name, Handler=handler)
        lam.get_waiter("function_updated_v2").wait(FunctionName=name)


def _stream_url(lam: Any, name: str) -> str:
    url: str = lam.create_function_url_config(
        FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM"
    )["FunctionUrl"]
    lam.add_permission(
        FunctionName=name,
        StatementId="public",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    return f"/lambda-url/{url.split('//')[1][:32]}/"


def measure(ctx: Context, server: ChildServer, kind: str, name: str, url: str) -> None:
    host = f"127.0.0.1:{server.port}"
    close = {"Connection": "close"}
    stream_path = f"/2021-11-15/functions/{name}/response-streaming-invocations"
    paths: dict[str, tuple[str, bytes]] = {
        "url": ("RESPONSE_STREAM function URL", build_request("GET", url, host, b"", close)),
        "events": ("InvokeWithResponseStream", _post(stream_path, host, close)),
        "invoke": ("buffered Invoke", _post(invoke_path(name), host, close)),
    }
    samples = ctx.plan.stream_samples
    for path, (label, raw) in paths.items():
        ctx.log(f"stream: {kind} via {label}, {samples} samples")
        key = f"stream.{path}.{kind}"
        first_ms: list[float] = []
        last_ms: list[float] = []
        try:
            _timed(server.port, raw)  # warm: the environment exists
            for _ in range(samples):
                first, last = _timed(server.port, raw)
                first_ms.append(first)
                last_ms.append(last)
        except RuntimeError as exc:
            ctx.results.add(failed(key, "stream", f"first byte, {label}", kind, str(exc)))
            continue
        values = summarize(first_ms)
        values["last_byte_p50_ms"] = summarize(last_ms)["p50_ms"]
        values["pause_ms"] = ctx.plan.stream_pause_ms
        values["display"] = (
            f"first byte p50 {values['p50_ms']:.2f} ms  p99 {values['p99_ms']:.2f} ms  "
            f"last byte p50 {values['last_byte_p50_ms']:.1f} ms  n={values['n']}"
        )
        ctx.results.add(Figure(key, "stream", f"{kind}: {label}", "lambdalite", values=values))


def _post(path: str, host: str, headers: dict[str, str]) -> bytes:
    return build_request("POST", path, host, b"{}", headers)


def _timed(port: int, raw: bytes) -> tuple[float, float]:
    """Milliseconds from writing ``raw`` to the first chunk's bytes and to the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.perf_counter()
        sock.sendall(raw)
        received = bytearray()
        first = None
        while True:
            data = sock.recv(1 << 20)
            if not data:
                break
            received += data
            if first is None and FIRST in received:
                first = time.perf_counter()
        end = time.perf_counter()
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200") or first is None or LAST not in body:
        raise RuntimeError(f"unexpected response {bytes(received[:300])!r}")
    if b"x-amz-function-error" in head.lower() or b"ErrorCode" in body:
        raise RuntimeError(f"function failed: {body[:300]!r}")
    return (first - start) * 1000, (end - start) * 1000


def measure_paced(ctx: Context, server: ChildServer) -> None:
    """One 10 MB stream through InvokeWithResponseStream: its duration against AWS's rule."""
    key = "stream.paced.python"
    label = f"{PACED_MB} MB InvokeWithResponseStream"
    ctx.log(f"stream: {label}")
    path = "/2021-11-15/functions/stream-python/response-streaming-invocations"
    body = json.dumps({"mb": PACED_MB}).encode()
    raw = build_request("POST", path, f"127.0.0.1:{server.port}", body, {"Connection": "close"})
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=120) as sock:
            start = time.perf_counter()
            sock.sendall(raw)
            size = 0
            while data := sock.recv(1 << 20):
                size += len(data)
            seconds = time.perf_counter() - start
    except OSError as exc:
        ctx.results.add(failed(key, "stream", label, "python", str(exc)))
        return
    if size < PACED_MB * 1024 * 1024:
        ctx.results.add(failed(key, "stream", label, "python", f"only {size} bytes arrived"))
        return
    rule = (PACED_MB - 6) / 2  # seconds AWS's rule asks for at least
    values = {
        "seconds": round(seconds, 3),
        "bytes": size,
        "rule_min_seconds": rule,
        "display": f"{seconds:.2f} s (AWS rule: >= {rule:.1f} s past the 6 MB burst at 2 MB/s)",
    }
    ctx.results.add(Figure(key, "stream", label, "python", values=values))
