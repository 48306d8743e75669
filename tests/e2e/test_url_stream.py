"""Function URLs in RESPONSE_STREAM mode, read chunk by chunk with httpx."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from lambdalite.runtimes.registry import NODE_RUNTIMES, RuntimeRegistry
from tests.e2e.harness import ServerProcess, create, zip_files

INSTALLED = [r for r in NODE_RUNTIMES if r in RuntimeRegistry().available()]
RUNTIME = INSTALLED[-1] if INSTALLED else None
pytestmark = pytest.mark.skipif(RUNTIME is None, reason="no Node.js 18, 20 or 22 on this host")

HANDLER = """
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
    const wait = Number((event.queryStringParameters || {}).pause || 10);
    if (event.rawPath === '/early') throw new Error('nothing written');
    if (event.rawPath === '/plain') {
        responseStream.setContentType('text/plain');
        responseStream.write('raw;');
        responseStream.end('body');
        return;
    }
    const stream = awslambda.HttpResponseStream.from(responseStream, {
        statusCode: 201,
        headers: { 'content-type': 'text/plain', 'x-kind': 'integration' },
        cookies: ['a=1', 'b=2; Path=/'],
    });
    stream.write('first;');
    await pause(wait);
    stream.write('second;');
    if (event.rawPath === '/fail') throw new Error('half way');
    await pause(wait);
    stream.end('third');
});
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("url-stream")).start()
    yield process
    assert process.stop() == 0


def stream_url(server: ServerProcess, name: str) -> str:
    api = server.client()
    create(
        api,
        name,
        Runtime=RUNTIME,
        Handler="index.handler",
        Code={"ZipFile": zip_files({"index.js": HANDLER})},
        Timeout=10,
    )
    url: str = api.create_function_url_config(
        FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM"
    )["FunctionUrl"]
    api.add_permission(
        FunctionName=name,
        StatementId="public",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    url_id = url.split("//")[1][:32]
    return f"{server.endpoint}/lambda-url/{url_id}"


def read(url: str) -> tuple[httpx.Response, list[tuple[float, bytes]]]:
    with httpx.stream("GET", url, timeout=30) as response:
        chunks = [(time.monotonic(), chunk) for chunk in response.iter_raw() if chunk]
    return response, chunks


def test_prelude_sets_status_headers_and_cookies_and_body_streams(
    server: ServerProcess, name: str
) -> None:
    base = stream_url(server, name)
    response, chunks = read(base + "/integration?pause=1000")
    assert response.status_code == 201
    assert response.headers["x-kind"] == "integration"
    assert response.headers["content-type"] == "text/plain"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2; Path=/"]
    assert b"".join(data for _, data in chunks) == b"first;second;third"
    # Two one-second pauses follow the first write: streamed, it arrives well before the end.
    assert chunks[0][1] == b"first;"
    assert chunks[-1][0] - chunks[0][0] >= 1.0


def test_plain_stream_errors_and_early_failure(server: ServerProcess, name: str) -> None:
    base = stream_url(server, name)
    response, chunks = read(base + "/plain")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain"
    assert b"".join(data for _, data in chunks) == b"raw;body"
    # A failure after the first byte ends the body; the status is already sent.
    response, chunks = read(base + "/fail")
    assert response.status_code == 201
    assert b"".join(data for _, data in chunks) == b"first;second;"
    early = httpx.get(base + "/early", timeout=30)
    assert early.status_code == 502 and early.text == "Internal Server Error"


def test_client_leaving_mid_stream_leaves_a_reusable_environment(
    server: ServerProcess, name: str
) -> None:
    base = stream_url(server, name)
    with httpx.stream("GET", base + "/integration?pause=500", timeout=30) as response:
        assert response.status_code == 201
        assert next(chunk for chunk in response.iter_raw() if chunk) == b"first;"
    # The client is gone; the function still runs to its end (two pauses), logged as usual ...
    logs = server.client("logs")
    group = f"/aws/lambda/{name}"
    deadline = time.monotonic() + 20
    found: list[dict[str, str]] = []
    while not found and time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            reply = logs.filter_log_events(logGroupName=group, filterPattern='"REPORT RequestId"')
            found = reply["events"]
        except logs.exceptions.ResourceNotFoundException:
            pass  # no line written yet
    assert found and "Duration" in found[0]["message"]
    # ... and its environment then serves the next request whole.
    again = httpx.get(base + "/plain", timeout=30)
    assert again.status_code == 200 and again.content == b"raw;body"
    assert len(logs.describe_log_streams(logGroupName=group)["logStreams"]) == 1
