"""Python functions that stream: generator handlers and the ``lambdalite_streaming`` helpers,
through InvokeWithResponseStream (boto3's EventStream), RESPONSE_STREAM function URLs (httpx)
and plain Invoke; plus the bandwidth rule and callers that leave mid-stream."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lambdalite.runtimes.registry import RuntimeRegistry
from tests.e2e.harness import ServerProcess, create, zip_files

INSTALLED = RuntimeRegistry().available()
RUNTIMES = [r for r in ("python3.9", "python3.13") if r in INSTALLED] or ["python3.11"]

HANDLER = """
import json, os, time
from lambdalite_streaming import HTTP_INTEGRATION, stream, stream_response

MB = 1024 * 1024


def chunks(event):
    pause = float(event.get("pause", 0.05))
    if event.get("early"):
        raise ValueError("nothing yet")
    yield "first;"
    time.sleep(pause)
    yield b"second;"
    if event.get("fail"):
        raise KeyError("half way")
    time.sleep(pause)
    yield "third"


def large(total_mb):
    for _ in range(int(total_mb)):
        yield b"x" * MB


def slow(tag, count):
    for index in range(count):
        yield f"tick {index};"
        time.sleep(0.2)
    print("stream finished", tag)


def handler(event, context):
    path = event.get("rawPath")
    if path is not None:  # a function URL
        query = event.get("queryStringParameters") or {}
        if path == "/plain":
            return stream(chunks(query), content_type="text/plain")
        if path == "/slow":
            return stream(slow(query["tag"], int(query["count"])), "text/plain")
        if path == "/bad-prelude":
            return stream(["{not json", "\\0" * 8, "body"], HTTP_INTEGRATION)
        if path == "/buffered":
            return {"statusCode": 202, "body": "not streamed"}
        return stream_response(
            chunks(query),
            status_code=201,
            headers={"content-type": "text/plain", "x-kind": "python"},
            cookies=["a=1", "b=2; Path=/"],
        )
    if event.get("large"):
        return large(event["large"])
    if event.get("tag"):
        return slow(event["tag"], int(event["count"]))
    if event.get("typed"):
        return stream(iter(["<p>", "hi", "</p>"]), content_type="text/html")
    return chunks(event)
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("py-stream")).start()
    yield process
    assert process.stop() == 0, process.output()
    # Callers leaving mid-stream are routine: nothing may be logged as failing.
    assert "Traceback" not in process.output() and "never retrieved" not in process.output()


@pytest.fixture(scope="module")
def lam(server: ServerProcess) -> Any:
    return server.client("lambda", read_timeout=120)


def deploy(lam: Any, name: str, runtime: str = RUNTIMES[-1]) -> None:
    create(
        lam,
        name,
        Runtime=runtime,
        Handler="app.handler",
        Code={"ZipFile": zip_files({"app.py": HANDLER})},
        Timeout=30,
    )


def received(lam: Any, name: str, event: dict[str, Any]) -> tuple[list[tuple[float, bytes]], Any]:
    response = lam.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps(event).encode(), LogType="Tail"
    )
    assert response["StatusCode"] == 200
    chunks, complete = [], None
    for item in response["EventStream"]:
        if "PayloadChunk" in item:
            chunks.append((time.monotonic(), item["PayloadChunk"]["Payload"]))
        else:
            complete = item["InvokeComplete"]
    return chunks, complete


def url_of(server: ServerProcess, lam: Any, name: str) -> str:
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
    return f"{server.endpoint}/lambda-url/{url.split('//')[1][:32]}"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_generator_streams_its_chunks_as_produced(lam: Any, name: str, runtime: str) -> None:
    deploy(lam, name, runtime)
    chunks, complete = received(lam, name, {"pause": 1})
    assert [data for _, data in chunks] == [b"first;", b"second;", b"third"]
    assert chunks[-1][0] - chunks[0][0] >= 1.0  # two one-second pauses between the yields
    assert "ErrorCode" not in complete
    assert "REPORT RequestId" in base64.b64decode(complete["LogResult"]).decode()
    # Plain Invoke gets the chunks joined, in the same (reused) environment.
    response = lam.invoke(FunctionName=name, Payload=b'{"pause": 0}')
    assert "FunctionError" not in response
    assert response["Payload"].read() == b"first;second;third"


def test_errors_before_and_after_the_first_chunk(lam: Any, name: str) -> None:
    deploy(lam, name)
    chunks, complete = received(lam, name, {"fail": True})
    assert b"".join(data for _, data in chunks) == b"first;second;"
    assert complete["ErrorCode"] == "KeyError" and complete["ErrorDetails"] == "'half way'"
    chunks, complete = received(lam, name, {"early": True})
    assert chunks == []
    assert complete["ErrorCode"] == "ValueError" and complete["ErrorDetails"] == "nothing yet"
    response = lam.invoke(FunctionName=name, Payload=b'{"early": true}')
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "ValueError"
    # The trace starts in the function's code, not in the runtime's helpers.
    assert error["stackTrace"] and all("app.py" in line for line in error["stackTrace"])
    response = lam.invoke(FunctionName=name, Payload=b'{"fail": true}')
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read())["errorType"] == "KeyError"
    chunks, complete = received(lam, name, {"typed": True})
    assert b"".join(data for _, data in chunks) == b"<p>hi</p>" and "ErrorCode" not in complete


def test_function_url_prelude_plain_stream_and_buffered(
    server: ServerProcess, lam: Any, name: str
) -> None:
    deploy(lam, name)
    base = url_of(server, lam, name)
    with httpx.stream("GET", base + "/page?pause=1", timeout=30) as response:
        parts = [(time.monotonic(), chunk) for chunk in response.iter_raw() if chunk]
    assert response.status_code == 201
    assert response.headers["x-kind"] == "python"
    assert response.headers["content-type"] == "text/plain"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2; Path=/"]
    assert b"".join(data for _, data in parts) == b"first;second;third"
    assert parts[0][1].startswith(b"first;") and parts[-1][0] - parts[0][0] >= 1.0
    plain = httpx.get(base + "/plain?pause=0", timeout=30)
    assert plain.status_code == 200 and plain.headers["content-type"] == "text/plain"
    assert plain.content == b"first;second;third"
    failed = httpx.get(base + "/page?pause=0&fail=1", timeout=30)
    assert failed.status_code == 201 and failed.content == b"first;second;"
    early = httpx.get(base + "/page?early=1", timeout=30)
    assert early.status_code == 502
    bad = httpx.get(base + "/bad-prelude", timeout=30)
    assert bad.status_code == 502 and bad.text == "Internal Server Error"
    buffered = httpx.get(base + "/buffered", timeout=30)
    assert buffered.status_code == 202 and buffered.text == "not streamed"


def test_past_six_mb_the_stream_is_paced(lam: Any, name: str) -> None:
    deploy(lam, name)
    started = time.monotonic()
    chunks, complete = received(lam, name, {"large": 10})
    elapsed = time.monotonic() - started
    assert sum(len(data) for _, data in chunks) == 10 * 1024 * 1024
    assert "ErrorCode" not in complete
    # 4 MB past the 6 MB burst at 2 MB/s take 2 s at least; generous margin below that.
    assert elapsed >= 1.6


def finished(server: ServerProcess, name: str, tag: str, within: float = 20) -> bool:
    """Whether the function logged the end of the stream tagged ``tag``."""
    logs = server.client("logs")
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            events = logs.filter_log_events(
                logGroupName=f"/aws/lambda/{name}", filterPattern=f'"stream finished {tag}"'
            )["events"]
        except logs.exceptions.ResourceNotFoundException:
            events = []  # no line written yet
        if events:
            return True
        time.sleep(0.2)
    return False


def test_caller_leaving_a_url_stream_lets_the_function_finish(
    server: ServerProcess, lam: Any, name: str
) -> None:
    deploy(lam, name)
    base = url_of(server, lam, name)
    started = time.monotonic()
    with httpx.stream("GET", base + "/slow?count=10&tag=url", timeout=30) as response:
        assert response.status_code == 200
        first = next(chunk for chunk in response.iter_raw() if chunk)
    assert first.startswith(b"tick 0;")  # and then the client hangs up
    # Not stopped: the function yields its ten ticks (~2 s) and logs the end.
    assert finished(server, name, "url")
    assert time.monotonic() - started >= 1.8
    # The environment is reused afterwards and answers whole.
    again = httpx.get(base + "/slow?count=2&tag=again", timeout=30)
    assert again.status_code == 200 and again.text == "tick 0;tick 1;"
    assert finished(server, name, "again")
    logs = server.client("logs")
    streams = logs.describe_log_streams(logGroupName=f"/aws/lambda/{name}")["logStreams"]
    assert len(streams) == 1  # one environment served both


def test_caller_leaving_an_event_stream_lets_the_function_finish(
    server: ServerProcess, lam: Any, name: str
) -> None:
    deploy(lam, name)
    response = lam.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"tag": "events", "count": 10}).encode()
    )
    stream = response["EventStream"]
    first = next(iter(stream))
    assert first["PayloadChunk"]["Payload"] == b"tick 0;"
    stream.close()  # closes the connection mid-stream
    assert finished(server, name, "events")
    chunks, complete = received(lam, name, {"pause": 0})
    assert b"".join(data for _, data in chunks) == b"first;second;third"
    assert "ErrorCode" not in complete
    logs = server.client("logs")
    streams = logs.describe_log_streams(logGroupName=f"/aws/lambda/{name}")["logStreams"]
    assert len(streams) == 1  # the environment the caller left was reused
