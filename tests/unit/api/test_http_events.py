"""Payload format 2.0 mapping, result mapping and CORS rules, without a server."""

from __future__ import annotations

import base64
import json

from lambdalite.api.http_events import (
    HttpRequest,
    apply_cors,
    build_event,
    is_preflight,
    is_text,
    map_result,
    preflight,
)


def request(**kw: object) -> HttpRequest:
    values: dict[str, object] = dict(
        method="GET",
        path="/p",
        raw_query="",
        headers=[],
        body=b"",
        source_ip="10.0.0.1",
        domain="x.lambda-url.us-east-1.localhost",
        url_id="x" * 32,
        request_id="rid",
        received=1584039838.5,
    )
    values.update(kw)
    return HttpRequest(**values)  # type: ignore[arg-type]


def test_event_shape() -> None:
    event = build_event(
        request(
            raw_query="a=1&a=2&c=%2F", headers=[("X-A", "1"), ("x-a", "2"), ("Cookie", "k=v; j=w")]
        ),
        None,
        "anonymous",
    )
    assert event["rawQueryString"] == "a=1&a=2&c=%2F"
    assert event["queryStringParameters"] == {"a": "1,2", "c": "/"}
    assert event["headers"]["x-a"] == "1,2" and event["cookies"] == ["k=v", "j=w"]
    assert event["headers"]["x-forwarded-for"] == "10.0.0.1"
    assert event["requestContext"]["time"] == "12/Mar/2020:19:03:58 +0000"
    assert event["requestContext"]["timeEpoch"] == 1584039838500
    assert "body" not in event and event["isBase64Encoded"] is False
    assert "authorizer" not in event["requestContext"]


def test_bodies_text_or_base64() -> None:
    assert is_text("application/json; charset=utf-8", b"{}")
    assert is_text("application/vnd.api+json", b"{}") and is_text("text/csv", b"a")
    assert not is_text("image/png", b"\x89PNG") and not is_text(None, b"\xff\xfe")
    event = build_event(
        request(body=b"\x00\xff", headers=[("content-type", "image/png")]), None, "a"
    )
    assert event["isBase64Encoded"] and base64.b64decode(event["body"]) == b"\x00\xff"


def test_result_mapping() -> None:
    plain = map_result(b'{"a": 1}')
    assert (plain.status, plain.body) == (200, b'{"a": 1}')
    structured = map_result(
        json.dumps(
            {
                "statusCode": 418,
                "headers": {"X": 1, "Y": True},
                "cookies": ["a=1", "b=2"],
                "body": base64.b64encode(b"\x01\x02").decode(),
                "isBase64Encoded": True,
            }
        ).encode()
    )
    assert structured.status == 418 and structured.body == b"\x01\x02"
    assert ("X", "1") in structured.headers and ("Y", "true") in structured.headers
    assert [v for k, v in structured.headers if k == "set-cookie"] == ["a=1", "b=2"]
    assert ("content-type", "application/json") in structured.headers
    for bad in (
        b"not json",
        b'{"statusCode": "x"}',
        b'{"statusCode": 99}',
        b'{"statusCode": 200, "body": "!!", "isBase64Encoded": true}',
    ):
        assert map_result(bad).status == 502, bad


def test_cors_rules() -> None:
    cors = {"AllowOrigins": ["*"], "AllowMethods": ["GET"], "ExposeHeaders": ["x-e"]}
    assert is_preflight("OPTIONS", [("Origin", "o"), ("Access-Control-Request-Method", "GET")])
    assert not is_preflight("OPTIONS", [("Origin", "o")])
    answer = dict(preflight(cors, "https://a.example").headers)
    assert answer["access-control-allow-origin"] == "*"
    with_credentials = dict(
        preflight({**cors, "AllowCredentials": True}, "https://a.example").headers
    )
    assert with_credentials["access-control-allow-origin"] == "https://a.example"
    response = map_result(b'{"statusCode": 200, "headers": {"Access-Control-Allow-Origin": "bad"}}')
    apply_cors(response, cors, "https://a.example")
    values = dict((k.lower(), v) for k, v in response.headers)
    assert (
        values["access-control-allow-origin"] == "*"
        and values["access-control-expose-headers"] == "x-e"
    )
    denied = map_result(b"{}")
    apply_cors(denied, {"AllowOrigins": ["https://only.example"]}, "https://other.example")
    assert not any(k.startswith("access-control") for k, _ in denied.headers)
