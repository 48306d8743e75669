"""Hot reload through unmodified boto3 and the lambdalite CLI: functions run from a live
directory, edits are served by the next invocation, published versions are snapshots, and
only allowed directories are accepted."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.e2e.harness import ROLE, ServerProcess, zip_files
from tests.unit.sandbox.conftest import require_namespaces

HANDLER = """
import os
import time
import uuid

ENVIRONMENT = uuid.uuid4().hex  # one per execution environment (module loaded once)


def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {{"answer": {answer}, "env": ENVIRONMENT, "root": os.environ["LAMBDA_TASK_ROOT"]}}
"""


def write_handler(directory: Path, answer: Any) -> None:
    """Rewrite the handler in place, as an editor saving the file would."""
    path = directory / "app.py"
    path.write_text(HANDLER.format(answer=json.dumps(answer)))
    path.chmod(0o644)


def live_dir(root: Path, answer: Any = 1) -> Path:
    directory = root / f"fn-{uuid.uuid4().hex[:8]}"
    directory.mkdir()
    directory.chmod(0o755)  # environments run as other users in namespace sandboxes
    write_handler(directory, answer)
    return directory


def invoke(lam: Any, name: str, event: dict[str, Any] | None = None, **extra: Any) -> Any:
    response = lam.invoke(FunctionName=name, Payload=json.dumps(event or {}), **extra)
    assert "FunctionError" not in response, response["Payload"].read()
    return json.load(response["Payload"])


def create_live(lam: Any, directory: Path, **extra: Any) -> tuple[str, dict[str, Any]]:
    name = f"hot-{uuid.uuid4().hex[:10]}"
    created = lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"S3Bucket": "hot-reload", "S3Key": str(directory)},
        **extra,
    )
    return name, created


@pytest.fixture(scope="module")
def live_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("live")
    root.chmod(0o755)
    return root


@pytest.fixture(scope="module")
def hot_server(
    tmp_path_factory: pytest.TempPathFactory, live_root: Path
) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("hot-server"), keep_alive=30, hot_reload_paths=str(live_root)
    ).start()
    yield server
    assert server.stop() == 0, server.output()


@pytest.fixture(scope="module")
def lam(hot_server: ServerProcess) -> Any:
    return hot_server.client()


def test_hot_reload_of_an_edited_handler(lam: Any, live_root: Path) -> None:
    directory = live_dir(live_root, "first")
    name, created = create_live(lam, directory)
    assert created["CodeSize"] == len((directory / "app.py").read_bytes())
    first = invoke(lam, name)
    assert first["answer"] == "first"
    assert invoke(lam, name)["env"] == first["env"]  # warm reuse while nothing changes

    for answer in ("second", "third", "fourth"):  # quick edits keeping the size
        write_handler(directory, answer)
        assert invoke(lam, name)["answer"] == answer  # the very next invocation

    # New files and subpackages are picked up as well.
    (directory / "helpers").mkdir(mode=0o755)
    (directory / "helpers" / "__init__.py").write_text("VALUE = 'from a new module'\n")
    (directory / "helpers" / "__init__.py").chmod(0o644)
    (directory / "app.py").write_text(
        "import helpers\n\ndef handler(event, context):\n    return {'answer': helpers.VALUE}\n"
    )
    assert invoke(lam, name)["answer"] == "from a new module"


def running(server: ServerProcess, name: str) -> int:
    figures = httpx.get(f"{server.endpoint}/_lambdalite/stats", timeout=5).json()
    return int(figures["functions"].get(name, {}).get("concurrentExecutions", 0))


def test_busy_environments_finish_then_are_replaced(
    hot_server: ServerProcess, lam: Any, live_root: Path
) -> None:
    directory = live_dir(live_root, "old")
    name, _ = create_live(lam, directory, Timeout=30)
    warm = invoke(lam, name)
    results: list[Any] = []
    slow = threading.Thread(target=lambda: results.append(invoke(lam, name, {"sleep": 2})))
    slow.start()
    deadline = time.monotonic() + 10
    while running(hot_server, name) == 0:  # the slow invocation has its (warm) environment
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.2)
    write_handler(directory, "new")
    fresh = invoke(lam, name)
    slow.join()
    assert results[0]["answer"] == "old"  # finished where it started
    assert results[0]["env"] == warm["env"]
    assert fresh["answer"] == "new"
    after = invoke(lam, name)
    assert after["answer"] == "new"
    assert after["env"] != warm["env"]  # the old environment was not put back to use


def test_get_function_and_update_function_code(lam: Any, live_root: Path) -> None:
    directory = live_dir(live_root, 1)
    name, created = create_live(lam, directory)
    got = lam.get_function(FunctionName=name)
    assert got["Code"]["Location"] == directory.as_uri()
    assert got["Configuration"]["CodeSha256"] == created["CodeSha256"]
    assert len(base64.b64decode(created["CodeSha256"])) == 32

    # Pointing the function at another directory switches code at once.
    other = live_dir(live_root, 2)
    updated = lam.update_function_code(FunctionName=name, S3Bucket="hot-reload", S3Key=str(other))
    assert updated["CodeSha256"] != created["CodeSha256"]
    assert invoke(lam, name)["answer"] == 2
    # And back to an ordinary zip: the directory no longer matters.
    package = zip_files({"app.py": HANDLER.format(answer='"zipped"')})
    lam.update_function_code(FunctionName=name, ZipFile=package)
    write_handler(other, 3)
    assert invoke(lam, name)["answer"] == "zipped"
    assert lam.get_function(FunctionName=name)["Code"]["Location"].startswith("http://")


def test_published_versions_are_snapshots(lam: Any, live_root: Path) -> None:
    directory = live_dir(live_root, "v1")
    name, _ = create_live(lam, directory)
    version = lam.publish_version(FunctionName=name)
    assert version["Version"] == "1"
    location = lam.get_function(FunctionName=name, Qualifier="1")["Code"]["Location"]
    assert location.startswith("http://") and location.endswith(".zip")
    write_handler(directory, "v2")
    assert invoke(lam, name)["answer"] == "v2"
    assert invoke(lam, name, Qualifier="1")["answer"] == "v1"
    # Unchanged files publish no new version; changed files do.
    again = lam.publish_version(FunctionName=name)
    assert again["Version"] == "2"
    assert lam.publish_version(FunctionName=name)["Version"] == "2"
    assert invoke(lam, name, Qualifier="2")["answer"] == "v2"


def test_directories_outside_the_allowed_paths_are_refused(
    lam: Any, live_root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    escape = live_root / f"link-{uuid.uuid4().hex[:6]}"
    escape.symlink_to(outside)
    cases = {
        str(outside): "is not under the paths this server allows",
        str(escape): "is not under the paths this server allows",
        f"{live_root}/../{outside.name}": "is not under the paths this server allows",
        "relative/dir": "absolute directory path",
        str(live_root / "missing"): "does not exist",
    }
    for key, words in cases.items():
        with pytest.raises(ClientError) as exc:
            lam.create_function(
                FunctionName=f"hot-{uuid.uuid4().hex[:10]}",
                Runtime="python3.11",
                Role=ROLE,
                Handler="app.handler",
                Code={"S3Bucket": "hot-reload", "S3Key": key},
            )
        error = exc.value.response["Error"]
        assert error["Code"] == "InvalidParameterValueException", key
        assert words in error["Message"], (key, error["Message"])


def test_servers_allow_no_directory_by_default(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "plain").start()
    try:
        directory = live_dir(tmp_path)
        with pytest.raises(ClientError) as exc:
            create_live(server.client(), directory)
        error = exc.value.response["Error"]
        assert error["Code"] == "InvalidParameterValueException"
        assert "--hot-reload-paths" in error["Message"]
    finally:
        assert server.stop() == 0


class Watcher:
    """``lambdalite deploy --watch`` in a child process, its output read line by line."""

    def __init__(self, server: ServerProcess, directory: Path, name: str) -> None:
        argv = [sys.executable, "-m", "lambdalite", "deploy", str(directory), "--name", name]
        argv += ["--watch", "--endpoint-url", server.endpoint]
        env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self.lines: list[str] = []

    def wait_for(self, words: str, within: float = 30) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if words in line:
                return line
        raise AssertionError(f"{words!r} not printed; output:\n{''.join(self.lines)}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def test_deploy_watch_serves_edits_live(
    hot_server: ServerProcess, lam: Any, live_root: Path
) -> None:
    directory = live_dir(live_root, "cli-1")
    name = f"watch-{uuid.uuid4().hex[:8]}"
    watcher = Watcher(hot_server, directory, name)
    try:
        assert "hot reload from" in watcher.wait_for("created arn:aws:lambda:us-east-1:")
        watcher.wait_for("watching")
        assert invoke(lam, name)["answer"] == "cli-1"
        write_handler(directory, "cli-2")
        assert invoke(lam, name)["answer"] == "cli-2"
        assert "app.py" in watcher.wait_for("changed:")
        assert lam.get_function(FunctionName=name)["Code"]["Location"] == directory.as_uri()
    finally:
        code = watcher.stop()
    assert code == 0
    assert watcher.proc.stdout is not None
    assert "stopped watching" in watcher.proc.stdout.read()


def test_deploy_watch_falls_back_to_redeploying(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "plain", keep_alive=30).start()
    try:
        directory = live_dir(tmp_path, "zip-1")
        name = f"watch-{uuid.uuid4().hex[:8]}"
        watcher = Watcher(server, directory, name)
        try:
            watcher.wait_for("hot reload not available")
            watcher.wait_for("watching")
            client = server.client()
            assert invoke(client, name)["answer"] == "zip-1"
            write_handler(directory, "zip-2")
            watcher.wait_for("redeployed")
            assert invoke(client, name)["answer"] == "zip-2"
        finally:
            assert watcher.stop() == 0
    finally:
        assert server.stop() == 0


def test_live_directory_in_namespace_sandboxes(tmp_path_factory: pytest.TempPathFactory) -> None:
    require_namespaces()
    root = tmp_path_factory.mktemp("live-ns")
    root.chmod(0o755)
    server = ServerProcess(
        tmp_path_factory.mktemp("ns-server"),
        keep_alive=30,
        sandbox="namespace",
        hot_reload_paths=str(root),
    ).start()
    try:
        client = server.client()
        directory = live_dir(root, "inside-1")
        name, _ = create_live(client, directory)
        first = invoke(client, name)
        assert first["answer"] == "inside-1"
        assert first["root"] == "/var/task"  # the live directory, mounted where AWS has code
        write_handler(directory, "inside-2")
        assert invoke(client, name)["answer"] == "inside-2"
    finally:
        assert server.stop() == 0, server.output()


def test_allowed_paths_are_checked_again_after_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "live"
    root.mkdir(mode=0o755)
    data = tmp_path / "data"
    server = ServerProcess(data, hot_reload_paths=str(root)).start()
    try:
        directory = live_dir(root, "before")
        name, _ = create_live(server.client(), directory)
        assert invoke(server.client(), name)["answer"] == "before"
    finally:
        assert server.stop() == 0
    narrower = ServerProcess(data, hot_reload_paths=str(tmp_path / "other")).start()
    try:
        client = narrower.client()
        assert client.get_function(FunctionName=name)["Code"]["Location"] == directory.as_uri()
        with pytest.raises(ClientError) as exc:
            client.invoke(FunctionName=name, Payload=b"{}")
        error = exc.value.response["Error"]
        assert error["Code"] == "ResourceConflictException"
        assert "is not under the paths this server allows" in error["Message"]
    finally:
        assert narrower.stop() == 0
