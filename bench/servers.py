"""The servers a run measures, each a child process of the benchmark on a loopback port.

Every server is started and stopped by the run itself, so one command measures everything in
one process tree, and nothing outlives it: on stop, processes the server started and left
behind are ended by pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.config

from bench import procs
from bench.httpclient import HttpConnection, HttpError

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class ServerError(RuntimeError):
    """A server could not be started; the message carries the end of its log."""


class ChildServer:
    """A server process on ``127.0.0.1:port`` with its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        scratch: Path,
        port: int,
        health_path: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.health_path = health_path
        self.env = env or {}
        self.scratch = scratch
        self.log_path = scratch / f"{name}-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 60.0) -> ChildServer:
        self.scratch.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.scratch,
            )
        deadline = time.monotonic() + timeout
        probe = HttpConnection(HOST, self.port, timeout=2.0)
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise ServerError(f"{self.name} exited early: {self.log_tail()}")
                try:
                    if probe.request("GET", self.health_path).status == 200:
                        return self
                except (OSError, HttpError):
                    time.sleep(0.05)
        finally:
            probe.close()
        self.stop()
        raise ServerError(f"{self.name} did not become healthy: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s; then end whatever it started and left running."""
        if self.proc is None:
            return
        left = procs.descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        alive = set(procs.parent_map())
        for pid in left:
            if pid in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.proc = None

    def log_line(self, containing: str) -> str:
        """The first line of the server's log that contains ``containing`` (or "")."""
        try:
            with open(self.log_path, errors="replace") as fh:
                return next((line.strip() for line in fh if containing in line), "")
        except OSError:
            return ""

    def log_tail(self, chars: int = 1500) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-chars:].strip()

    def client(self, service: str = "lambda") -> Any:
        """A boto3 client for the control plane (never used on a timed path)."""
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=300),
        )

    def connection(self) -> HttpConnection:
        return HttpConnection(HOST, self.port)


def lambdalite(scratch: Path, **settings: Any) -> ChildServer:
    """``lambdalite serve`` with ``LAMBDALITE_*`` settings and its own data directory."""
    port = free_port()
    data_dir = scratch / f"lambdalite-{port}"
    argv = [sys.executable, "-m", "lambdalite", "serve", "--port", str(port)]
    argv += ["--data-dir", str(data_dir)]
    env = {f"LAMBDALITE_{key.upper()}": str(value) for key, value in settings.items()}
    return ChildServer("lambdalite", argv, scratch, port, "/_lambdalite/health", env)


def echo(scratch: Path) -> ChildServer:
    """The bare HTTP echo server: the same uvicorn and httptools lambdalite serves with."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bench.echo_app:app", "--host", HOST]
    argv += ["--port", str(port), "--http", "httptools", "--lifespan", "off"]
    argv += ["--log-level", "warning", "--no-access-log", "--timeout-keep-alive", "75"]
    env = {"PYTHONPATH": str(REPO)}
    return ChildServer("echo", argv, scratch, port, "/health", env)


def ministack(scratch: Path, executable: Path) -> ChildServer:
    """MiniStack's own entry point, bound to loopback by its ``BIND_HOST`` variable."""
    port = free_port()
    env = {
        "GATEWAY_PORT": str(port),
        "BIND_HOST": HOST,
        "LOG_LEVEL": "WARNING",
        "TMPDIR": str(scratch),
    }
    return ChildServer("ministack", [str(executable)], scratch, port, "/_ministack/health", env)


@contextlib.contextmanager
def running(server: ChildServer) -> Iterator[ChildServer]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
