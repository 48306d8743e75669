"""Many asynchronous events against a real server, optionally killed and restarted midway.

Shared by the no-loss test and ``bench/async_queue.py``. A *recorder* function appends its
request id to a file on the host (one ``write`` on an ``O_APPEND`` descriptor, so lines from
concurrent environments never interleave). Senders post ``Event`` invocations over plain
HTTP; an event counts as *accepted* only when its 202 arrived (its request id is the
``x-amzn-RequestId`` header, which is also the id the function sees). A send that fails
because the server died is sent again to the restarted server as a new request.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.harness import ServerProcess, zip_files

RECORDER = """
import os

def handler(event, context):
    fd = os.open(os.environ["RECORD_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (context.aws_request_id + "\\n").encode())
    finally:
        os.close(fd)
"""

PATH = "/2015-03-31/functions/{name}/invocations"


@dataclass
class LoadResult:
    accepted: list[str] = field(default_factory=list)
    unconfirmed: int = 0  # sends whose answer never came (the server died meanwhile)
    send_seconds: float = 0.0
    drained_at: float = 0.0  # monotonic time the last accepted event was recorded
    started_at: float = 0.0
    killed: bool = False

    def recorded(self, record_file: Path) -> Counter[str]:
        if not record_file.exists():
            return Counter()
        return Counter(line for line in record_file.read_text().splitlines() if line)


def create_recorder(server: ServerProcess, name: str, record_file: Path) -> None:
    server.client().create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role="arn:aws:iam::000000000000:role/lambda-role",
        Handler="app.handler",
        Code={"ZipFile": zip_files({"app.py": RECORDER})},
        Environment={"Variables": {"RECORD_FILE": str(record_file)}},
    )


class Sender:
    """Posts ``count`` events from ``threads`` threads to whichever server is current."""

    def __init__(self, name: str, count: int, threads: int) -> None:
        self.name = name
        self.count = count
        self.threads = threads
        self.result = LoadResult()
        self._next = 0
        self._lock = threading.Lock()
        self._endpoint: str | None = None
        self._up = threading.Condition(self._lock)

    def set_endpoint(self, endpoint: str | None) -> None:
        with self._up:
            self._endpoint = endpoint
            self._up.notify_all()

    @property
    def accepted(self) -> int:
        return len(self.result.accepted)

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= self.count:
                return None
            self._next += 1
            return self._next

    def _current(self, stale: str | None) -> str:
        with self._up:
            while self._endpoint is None or self._endpoint == stale:
                self._up.wait(0.05)
            return self._endpoint

    def _run(self) -> None:
        endpoint = self._current(None)
        client = httpx.Client(base_url=endpoint, timeout=30)
        path = PATH.format(name=self.name)
        headers = {"X-Amz-Invocation-Type": "Event"}
        try:
            while (index := self._take()) is not None:
                body = json.dumps({"n": index}).encode()
                while True:
                    try:
                        response = client.post(path, content=body, headers=headers)
                    except httpx.HTTPError:
                        with self._lock:
                            self.result.unconfirmed += 1
                        client.close()
                        endpoint = self._current(endpoint)
                        client = httpx.Client(base_url=endpoint, timeout=30)
                        continue
                    if response.status_code == 202:
                        with self._lock:
                            self.result.accepted.append(response.headers["x-amzn-requestid"])
                        break
                    raise AssertionError(
                        f"unexpected answer {response.status_code}: {response.text}"
                    )
        finally:
            client.close()

    def start(self) -> list[threading.Thread]:
        self.result.started_at = time.monotonic()
        threads = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]
        for thread in threads:
            thread.start()
        return threads


def queue_depth(server: ServerProcess) -> int:
    stats: dict[str, Any] = httpx.get(f"{server.endpoint}/_lambdalite/stats", timeout=10).json()
    return int(stats["account"]["asyncQueueDepth"])


def wait_recorded(result: LoadResult, record_file: Path, deadline: float) -> Counter[str]:
    """Wait until every accepted request id is in the file (or the deadline passes)."""
    wanted = set(result.accepted)
    seen: Counter[str] = Counter()
    while time.monotonic() < deadline:
        seen = result.recorded(record_file)
        if wanted <= set(seen):
            result.drained_at = time.monotonic()
            return seen
        time.sleep(0.2)
    return seen


def run_with_crash(
    data_dir: Path,
    database_url: str | None,
    record_file: Path,
    *,
    count: int,
    kill_after: int,
    threads: int = 8,
    timeout: float = 300.0,
    **settings: Any,
) -> tuple[LoadResult, Counter[str], list[ServerProcess]]:
    """Send ``count`` events, SIGKILL the server once ``kill_after`` were accepted, restart it
    on the same data, finish sending, and wait until every accepted event ran."""
    first = ServerProcess(data_dir, database_url, **settings).start()
    servers = [first]
    create_recorder(first, "recorder", record_file)
    sender = Sender("recorder", count, threads)
    sender.set_endpoint(first.endpoint)
    workers = sender.start()
    deadline = time.monotonic() + timeout
    while sender.accepted < kill_after and time.monotonic() < deadline:
        time.sleep(0.005)
    sender.set_endpoint(None)
    first.stop(signal.SIGKILL)
    sender.result.killed = True
    second = ServerProcess(data_dir, database_url, **settings).start()
    servers.append(second)
    sender.set_endpoint(second.endpoint)
    for worker in workers:
        worker.join(max(1.0, deadline - time.monotonic()))
    sender.result.send_seconds = time.monotonic() - sender.result.started_at
    seen = wait_recorded(sender.result, record_file, deadline)
    return sender.result, seen, servers
