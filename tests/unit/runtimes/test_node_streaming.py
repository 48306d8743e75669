"""Response streaming from the Node.js runtime client: the client side of the streaming mode."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

from lambdalite.runtimes import RuntimeCommand

from .peer import API, Event, Posted, Run, RuntimeApiPeer, run_bootstrap, write_code

HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"


def streamed(node: RuntimeCommand, root: Path, body: str, events: list[Event], **kw: Any) -> Run:
    """Run ``body`` as the inside of ``async (event, stream, context) => { ... }``."""
    source = (
        "const { pipeline } = require('stream/promises');\n"
        "const { Readable } = require('stream');\n"
        "const fs = require('fs');\n"
        f"exports.handler = awslambda.streamifyResponse(async (event, stream, context) => {{\n{body}\n}});\n"
    )
    write_code(root, {"index.js": source})
    return run_bootstrap(node, root, "index.handler", events, **kw)


def response_path(event: Event) -> str:
    return f"{API}/invocation/{event.request_id}/response"


def streamed_response(run: Run, event: Event) -> Posted:
    posted = run.peer.responses.get(event.request_id)
    assert posted is not None, (run.stdout, run.stderr)
    assert posted.headers["Lambda-Runtime-Function-Response-Mode"] == "streaming"
    assert posted.headers["Transfer-Encoding"] == "chunked"
    assert set(posted.headers["Trailer"].replace(" ", "").split(",")) == {
        "Lambda-Runtime-Function-Error-Type",
        "Lambda-Runtime-Function-Error-Body",
    }
    return posted


def trailer_error(posted: Posted) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        base64.b64decode(posted.trailers["lambda-runtime-function-error-body"])
    )
    assert posted.trailers["lambda-runtime-function-error-type"] == document["errorType"]
    return document


def test_chunks_are_sent_as_they_are_written(node: RuntimeCommand, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    event = Event(body=json.dumps({"gate": str(gate)}).encode())

    def release_after_first_chunk(peer: RuntimeApiPeer, proc: subprocess.Popen[bytes]) -> None:
        assert peer.wait_for(lambda: bool(peer.chunks.get(response_path(event))), proc)
        assert peer.chunks[response_path(event)] == [b"first "]
        assert event.request_id not in peer.responses, "the response is still open"
        gate.touch()

    body = """
        stream.write('first ');
        while (event.gate && !fs.existsSync(event.gate)) await new Promise((r) => setTimeout(r, 5));
        stream.write('second');
        stream.end();
    """
    run = streamed(node, tmp_path, body, [event, Event()], during=release_after_first_chunk)
    posted = streamed_response(run, event)
    assert posted.body == b"first second"
    assert posted.headers["Content-Type"] == "application/octet-stream"
    assert posted.trailers == {}
    assert len(run.peer.next_calls) == 3, "the runtime went on to the next invocations"


def test_http_integration_prelude(node: RuntimeCommand, tmp_path: Path) -> None:
    prelude = {"statusCode": 201, "headers": {"x-custom": "yes"}, "cookies": ["a=1"]}
    with_body, without_body = Event(body=b'"body"'), Event(body=b'"empty"')
    body = f"""
        const metadata = {json.dumps(prelude)};
        stream = awslambda.HttpResponseStream.from(stream, metadata);
        if (event === 'body') {{ stream.write('hello'); stream.end(' world'); }}
        else stream.end();
    """
    run = streamed(node, tmp_path, body, [with_body, without_body])
    expected_head = json.dumps(prelude, separators=(",", ":")).encode() + b"\0" * 8
    posted = streamed_response(run, with_body)
    assert posted.headers["Content-Type"] == HTTP_INTEGRATION
    assert posted.body == expected_head + b"hello world"
    assert streamed_response(run, without_body).body == expected_head


def test_content_type_objects_and_pipelines(node: RuntimeCommand, tmp_path: Path) -> None:
    event = Event()
    body = """
        stream.setContentType('application/x-ndjson');
        stream.write({ a: 1 });
        let tooLate = null;
        try { stream.setContentType('text/plain'); } catch (err) { tooLate = err.name; }
        await pipeline(Readable.from(['\\n', JSON.stringify({ tooLate }), '\\n']), stream);
    """
    run = streamed(node, tmp_path, body, [event])
    posted = streamed_response(run, event)
    assert posted.headers["Content-Type"] == "application/x-ndjson"
    assert posted.body.split(b"\n") == [
        b'{"a":1}',
        b'{"tooLate":"Runtime.InvalidStreamingOperation"}',
        b"",
    ]


def test_failure_before_the_first_byte_is_an_ordinary_error(
    node: RuntimeCommand, tmp_path: Path
) -> None:
    event, after = Event(), Event(body=b'"ok"')
    body = "if (event !== 'ok') throw new TypeError('no data'); stream.end('fine');"
    run = streamed(node, tmp_path, body, [event, after])
    assert event.request_id not in run.peer.responses
    document = run.error(event).json()
    assert (document["errorType"], document["errorMessage"]) == ("TypeError", "no data")
    assert "Lambda-Runtime-Function-XRay-Error-Cause" in run.error(event).headers
    assert any("\tERROR\tInvoke Error \t" in line for line in run.stdout_lines())
    assert streamed_response(run, after).body == b"fine"


def test_failure_mid_stream_goes_into_trailers(node: RuntimeCommand, tmp_path: Path) -> None:
    event = Event()
    body = """
        stream.write('partial ');
        await new Promise((r) => setTimeout(r, 10));
        throw new RangeError('mid-stream');
    """
    run = streamed(node, tmp_path, body, [event, Event()])
    posted = streamed_response(run, event)
    assert posted.body == b"partial "
    document = trailer_error(posted)
    assert (document["errorType"], document["errorMessage"]) == ("RangeError", "mid-stream")
    assert document["trace"][0] == "RangeError: mid-stream"
    assert event.request_id not in run.peer.errors


def test_destroying_the_stream_with_an_error(node: RuntimeCommand, tmp_path: Path) -> None:
    event = Event()
    body = "stream.write('some '); stream.destroy(new Error('source broke'));"
    run = streamed(node, tmp_path, body, [event])
    document = trailer_error(streamed_response(run, event))
    assert document["errorMessage"] == "source broke"


def test_non_async_streaming_handler(node: RuntimeCommand, tmp_path: Path) -> None:
    write_code(
        tmp_path,
        {
            "index.js": "exports.handler = awslambda.streamifyResponse((event, stream) => { stream.end('x'); });"
        },
    )
    event = Event()
    run = run_bootstrap(node, tmp_path, "index.handler", [event])
    posted = run.peer.responses.get(event.request_id) or run.error(event)
    document = trailer_error(posted) if posted.trailers else posted.json()
    assert document["errorType"] == "string"
    assert document["errorMessage"] == "Streaming does not support non-async handlers."


def test_unfinished_streams_are_reported(node: RuntimeCommand, tmp_path: Path) -> None:
    written, untouched, after = (
        Event(body=b'"write"'),
        Event(body=b'"nothing"'),
        Event(body=b'"end"'),
    )
    body = """
        if (event === 'write') stream.write('never ended');
        if (event === 'end') stream.end('ended');
        return 'ignored';
    """
    run = streamed(node, tmp_path, body, [written, untouched, after])
    document = trailer_error(streamed_response(run, written))
    assert (document["errorType"], document["errorMessage"]) == (
        "string",
        "Response stream is not finished.",
    )
    assert run.error(untouched).json()["errorMessage"] == "Response stream is not finished."
    assert streamed_response(run, after).body == b"ended"
    warnings = [line for line in run.stdout_lines() if "\tWARN\t" in line]
    assert len(warnings) == 3
    assert warnings[0].endswith("\tStreaming handlers ignore return values.")


def test_stream_options_and_context(node: RuntimeCommand, tmp_path: Path) -> None:
    source = """
        exports.handler = awslambda.streamifyResponse(async (event, stream, context) => {
            context.callbackWaitsForEmptyEventLoop = false;
            stream.end(JSON.stringify({
                highWaterMark: stream.writableHighWaterMark,
                requestId: context.awsRequestId,
                functionName: context.functionName,
                remaining: context.getRemainingTimeInMillis() > 0,
            }));
        }, { highWaterMark: 4 });
    """
    write_code(tmp_path, {"index.js": source})
    events = [Event(), Event()]
    run = run_bootstrap(node, tmp_path, "index.handler", events)
    for event in events:
        assert json.loads(streamed_response(run, event).body) == {
            "highWaterMark": 4,
            "requestId": event.request_id,
            "functionName": "fn",
            "remaining": True,
        }
