"""Invoke latency through the HTTP API: cold starts and warm invokes at concurrency 1.

Starts its own server on a free port with a scratch data directory, so it measures the
whole path a client sees (HTTP → control plane → environment → Runtime API and back).
Usage: .venv/bin/python bench/invoke_latency.py [--warm 2000] [--cold 30]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.e2e.harness import ServerProcess

APP = "def handler(event, context):\n    return event\n"


def package() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", APP)
    return buf.getvalue()


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50:.2f} ms  p99 {p99:.2f} ms  (n={len(ordered)})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warm", type=int, default=2000)
    parser.add_argument("--cold", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        server = ServerProcess(Path(scratch), keep_alive=600).start()
        try:
            lam = server.client()
            code = package()
            cold: list[float] = []
            with httpx.Client(base_url=server.endpoint) as http:
                for i in range(args.cold):
                    lam.create_function(
                        FunctionName=f"cold{i}",
                        Runtime="python3.11",
                        Handler="app.handler",
                        Role="arn:aws:iam::000000000000:role/r",
                        Code={"ZipFile": code},
                    )
                    start = time.perf_counter()
                    http.post(f"/2015-03-31/functions/cold{i}/invocations", content=b"{}")
                    cold.append((time.perf_counter() - start) * 1000)
                warm: list[float] = []
                url = "/2015-03-31/functions/cold0/invocations"
                for _ in range(200):
                    http.post(url, content=b'{"k": 1}')
                for _ in range(args.warm):
                    start = time.perf_counter()
                    response = http.post(url, content=b'{"k": 1}')
                    warm.append((time.perf_counter() - start) * 1000)
                    assert response.status_code == 200
            print(f"cold start (first invoke, python3.11): {percentiles(cold)}")
            print(f"warm invoke (httpx, concurrency 1):     {percentiles(warm)}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
