"""The aws CLI, the lambdalite CLI and the CloudWatch Logs API against a real server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.e2e.harness import FUNCTIONS, ServerProcess, create, function_zip

BIN = Path(sys.executable).parent


def aws(server: ServerProcess, *args: str) -> Any:
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
    )
    done = subprocess.run(
        [str(BIN / "aws"), "--endpoint-url", server.endpoint, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


def lambdalite(
    server: ServerProcess, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(BIN / "lambdalite"), *args, "--endpoint-url", server.endpoint],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_aws_cli(server: ServerProcess, tmp_path: Path, name: str) -> None:
    package = tmp_path / "fn.zip"
    package.write_bytes(function_zip("basic"))
    created = aws(
        server,
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        "python3.11",
        "--handler",
        "app.handler",
        "--role",
        "arn:aws:iam::000000000000:role/r",
        "--zip-file",
        f"fileb://{package}",
    )
    assert created["FunctionName"] == name
    aws(server, "lambda", "wait", "function-active-v2", "--function-name", name)
    out = tmp_path / "out.json"
    result = aws(
        server,
        "lambda",
        "invoke",
        "--function-name",
        name,
        "--payload",
        '{"k": 1}',
        str(out),
    )
    assert result["StatusCode"] == 200 and result["ExecutedVersion"] == "$LATEST"
    assert json.loads(out.read_text())["event"] == {"k": 1}
    version = aws(server, "lambda", "publish-version", "--function-name", name)
    assert version["Version"] == "1"
    aws(
        server,
        "lambda",
        "create-alias",
        "--function-name",
        name,
        "--name",
        "live",
        "--function-version",
        "1",
    )
    listed = aws(server, "lambda", "list-functions")
    assert name in [f["FunctionName"] for f in listed["Functions"]]
    aws(server, "lambda", "delete-function", "--function-name", name)


def test_lambdalite_cli(server: ServerProcess, tmp_path: Path, name: str) -> None:
    source = tmp_path / "src"
    shutil.copytree(FUNCTIONS / "basic", source)
    deployed = lambdalite(
        server,
        "deploy",
        str(source),
        "--name",
        name,
        "--runtime",
        "python3.11",
        "--handler",
        "app.handler",
        "--env",
        "MY_FLAG=on",
    )
    assert "created" in deployed.stdout
    invoked = lambdalite(server, "invoke", name, "--payload", '{"x": 2}')
    body = json.loads(invoked.stdout)
    assert body["event"] == {"x": 2} and body["env"]["MY_FLAG"] == "on"
    (source / "app.py").write_text("def handler(e, c):\n    return 'redeployed'\n")
    assert "updated" in lambdalite(server, "deploy", str(source), "--name", name).stdout
    assert lambdalite(server, "invoke", name).stdout.strip() == '"redeployed"'
    assert name in lambdalite(server, "ls").stdout
    failed = lambdalite(server, "invoke", name, "--payload", "{bad", check=False)
    assert failed.returncode != 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logs = lambdalite(server, "logs", name).stdout
        if "REPORT RequestId" in logs:
            break
        time.sleep(0.1)
    assert re.search(r"START RequestId: [0-9a-f-]{36} Version: \$LATEST", logs)
    assert 'event {"x": 2}' in logs


def test_logs_follow(server: ServerProcess, name: str) -> None:
    lam = server.client()
    create(lam, name)
    follower = subprocess.Popen(
        [str(BIN / "lambdalite"), "logs", name, "--follow", "--endpoint-url", server.endpoint],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lam.invoke(FunctionName=name, Payload=json.dumps({"mark": "first"}).encode())
        lam.invoke(FunctionName=name, Payload=json.dumps({"mark": "second"}).encode())
        assert follower.stdout is not None
        seen: list[str] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum("REPORT" in line for line in seen) < 2:
            seen.append(follower.stdout.readline())
        text = "".join(seen)
        assert text.index('"first"') < text.index('"second"')
        assert text.count("REPORT RequestId") == 2
    finally:
        follower.terminate()
        follower.wait(10)


def test_cloudwatch_logs_api(server: ServerProcess, name: str) -> None:
    lam = server.client()
    create(lam, name)
    request_ids = [
        lam.invoke(FunctionName=name, Payload=b"{}")["ResponseMetadata"]["RequestId"]
        for _ in range(2)
    ]
    logs = server.client("logs")
    group = f"/aws/lambda/{name}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = (
            logs.filter_log_events(logGroupName=group)["events"]
            if any(
                g["logGroupName"] == group
                for g in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
            )
            else []
        )
        if sum(e["message"].startswith("REPORT") for e in events) == 2:
            break
        time.sleep(0.1)
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert len(streams) == 1  # both invocations ran in one warm environment
    stream = streams[0]["logStreamName"]
    assert re.match(r"^\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}$", stream)
    messages = [
        e["message"]
        for e in logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)[
            "events"
        ]
    ]
    assert messages[0].startswith("INIT_START Runtime Version: python:3.11")
    assert (
        messages[1] == f"START RequestId: {request_ids[0]} Version: $LATEST\n"
        or messages[1].rstrip("\n") == f"START RequestId: {request_ids[0]} Version: $LATEST"
    )
    reports = [m for m in messages if m.startswith("REPORT")]
    assert "Init Duration:" in reports[0] and "Init Duration:" not in reports[1]
    filtered = logs.filter_log_events(logGroupName=group, filterPattern="END")["events"]
    assert len(filtered) == 2 and all(e["logStreamName"] == stream for e in filtered)
