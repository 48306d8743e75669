"""A minimal Runtime API (2018-06-01) server and a runner for the runtime clients.

The peer serves queued events on ``/runtime/invocation/next`` with the documented headers and
records everything the runtime posts back, answering ``202 {"status":"OK"}``. Chunked
request bodies (response streaming) are recorded chunk by chunk as they arrive, with their
trailers. It exists so the runtime clients can be tested against the wire contract alone,
independent of the platform's own Runtime API implementation.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lambdalite.runtimes import RuntimeCommand

API = "/2018-06-01/runtime"
WAIT_SECONDS = 30.0
# AWS's runtime indents traceback lines in its log output with no-break spaces.
NBSP = "\u00a0"


def write_code(root: Path, files: dict[str, str]) -> Path:
    """Write function source files (dedented) under ``root``."""
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root


@dataclass
class Event:
    """One invocation to hand out on ``next``; ``action`` "fail"/"close" breaks the call."""

    body: bytes = b"{}"
    request_id: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    deadline_ms: int | None = None
    action: str = "serve"
    chunked: bool = False

    def __post_init__(self) -> None:
        if not self.request_id:
            self.request_id = f"req-{os.urandom(6).hex()}"


@dataclass
class Posted:
    path: str
    headers: dict[str, str]
    body: bytes
    trailers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


class RuntimeApiPeer:
    """Threaded HTTP/1.1 server bound to 127.0.0.1 on a free port."""

    def __init__(self, *, close_after_next: bool = False) -> None:
        self.events: queue.Queue[Event | None] = queue.Queue()
        self.responses: dict[str, Posted] = {}
        self.errors: dict[str, Posted] = {}
        self.init_errors: list[Posted] = []
        self.next_calls: list[dict[str, str]] = []
        # Chunks of chunked POST bodies, by path, recorded as each one arrives.
        self.chunks: dict[str, list[bytes]] = {}
        self.close_after_next = close_after_next
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_port}"

    def close(self) -> None:
        self.events.put(None)
        self._server.shutdown()
        self._server.server_close()

    def record(self, update: Callable[[], None]) -> None:
        with self._changed:
            update()
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], proc: subprocess.Popen[bytes]) -> bool:
        """Wait until ``predicate`` holds; False if the process exited first."""
        deadline = time.monotonic() + WAIT_SECONDS
        with self._changed:
            while not predicate():
                if proc.poll() is not None:
                    return predicate()
                if time.monotonic() > deadline:
                    raise TimeoutError("runtime did not reach the expected state")
                self._changed.wait(0.05)
        return True


def _handler_class(peer: RuntimeApiPeer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path != f"{API}/invocation/next":
                self._reply(404, {"errorType": "NotFound", "errorMessage": self.path})
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            peer.record(lambda: peer.next_calls.append(headers))
            event = peer.events.get()
            if event is None or event.action == "close":
                self.close_connection = True
                return
            if event.action == "fail":
                self._reply(500, {"errorType": "InternalServerError", "errorMessage": "x"})
                return
            deadline = event.deadline_ms or int(time.time() * 1000) + 60_000
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", event.request_id)
            self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline))
            self.send_header(
                "Lambda-Runtime-Invoked-Function-Arn",
                "arn:aws:lambda:us-east-1:000000000000:function:fn",
            )
            headers_out = {"Content-Type": "application/json", **event.headers}
            for name, value in headers_out.items():
                self.send_header(name, value)
            if event.chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                half = len(event.body) // 2
                for part in (event.body[:half], event.body[half:], b""):
                    self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
            else:
                self.send_header("Content-Length", str(len(event.body)))
                self.end_headers()
                self.wfile.write(event.body)
            self.wfile.flush()
            if peer.close_after_next:
                self.close_connection = True

        def do_POST(self) -> None:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                body, trailers = self._read_chunked()
            else:
                length = int(self.headers.get("Content-Length") or 0)
                body, trailers = self.rfile.read(length), {}
            posted = Posted(self.path, dict(self.headers.items()), body, trailers)
            prefix = f"{API}/invocation/"
            if self.path == f"{API}/init/error":
                peer.record(lambda: peer.init_errors.append(posted))
            elif self.path.startswith(prefix) and self.path.endswith("/response"):
                rid = self.path[len(prefix) : -len("/response")]
                peer.record(lambda: peer.responses.__setitem__(rid, posted))
            elif self.path.startswith(prefix) and self.path.endswith("/error"):
                rid = self.path[len(prefix) : -len("/error")]
                peer.record(lambda: peer.errors.__setitem__(rid, posted))
            else:
                self._reply(404, {"errorType": "NotFound", "errorMessage": self.path})
                return
            self._reply(202, {"status": "OK"})

        def _read_chunked(self) -> tuple[bytes, dict[str, str]]:
            received = peer.chunks.setdefault(self.path, [])
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    break
                chunk = self.rfile.read(size)
                self.rfile.readline()
                peer.record(lambda chunk=chunk: received.append(chunk))
            trailers: dict[str, str] = {}
            while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                trailers[name.strip().lower()] = value.strip()
            return b"".join(received), trailers

        def _reply(self, status: int, document: dict[str, str]) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@dataclass
class Run:
    """What one runtime process did: its exit status, output and everything it posted."""

    returncode: int
    stdout: str
    stderr: str
    peer: RuntimeApiPeer

    def response(self, event: Event) -> Any:
        assert event.request_id in self.peer.responses, (self.stdout, self.stderr)
        return self.peer.responses[event.request_id].json()

    def error(self, event: Event) -> Posted:
        assert event.request_id in self.peer.errors, (self.stdout, self.stderr)
        return self.peer.errors[event.request_id]

    def stdout_lines(self) -> list[str]:
        return self.stdout.split("\n")[:-1]


def run_bootstrap(
    runtime: RuntimeCommand,
    task_root: Path,
    handler: str,
    events: list[Event],
    env: Mapping[str, str] | None = None,
    *,
    close_after_next: bool = False,
    during: Callable[[RuntimeApiPeer, subprocess.Popen[bytes]], None] | None = None,
) -> Run:
    """Start ``runtime``, serve ``events`` and stop it with SIGTERM once all are answered.

    If the runtime exits on its own (init failure, broken ``next``) the run ends there.
    ``during``, when given, runs once the process has started (to act on it mid-run).
    """
    peer = RuntimeApiPeer(close_after_next=close_after_next)
    for event in events:
        peer.events.put(event)
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "AWS_LAMBDA_RUNTIME_API": peer.address,
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": str(task_root),
        "AWS_LAMBDA_FUNCTION_NAME": "fn",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]0123456789abcdef0123456789abcdef",
        "AWS_REGION": "us-east-1",
        "AWS_EXECUTION_ENV": runtime.execution_env,
        **(env or {}),
    }
    proc = subprocess.Popen(
        runtime.argv,
        cwd=task_root,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        if during is not None:
            during(peer, proc)
        if all(e.action == "serve" for e in events) and peer.wait_for(
            lambda: len(peer.next_calls) > len(events), proc
        ):
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=WAIT_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        peer.close()
    return Run(proc.returncode, out.decode("utf-8"), err.decode("utf-8"), peer)
