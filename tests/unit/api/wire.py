"""Drive botocore's own serializer and parser against the wire layer.

Requests are produced by a real botocore client and captured in its ``before-send`` hook
(nothing goes on the network); responses are fed to botocore's real response parser. That
way the tests check the server against exactly what the SDK sends and expects.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import botocore.session
from botocore import xform_name
from botocore.awsrequest import AWSPreparedRequest
from botocore.config import Config
from botocore.model import OperationModel, Shape
from botocore.parsers import create_parser
from dateutil.tz import tzutc

from lambdalite.api.protocol import HeaderMap

SAMPLE_TIME = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=tzutc())


class Captured(Exception):
    def __init__(self, request: AWSPreparedRequest) -> None:
        super().__init__("captured")
        self.request = request


@dataclass
class WireRequest:
    method: str
    raw_path: str
    query: dict[str, list[str]]
    headers: HeaderMap
    body: bytes


def make_client(
    service: str, endpoint: str = "http://wire.invalid", *, validate: bool = True
) -> Any:
    """A botocore client without retries; ``validate=False`` lets bad values reach the server."""
    session = botocore.session.get_session()
    return session.create_client(
        service,
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="a",
        aws_secret_access_key="b",
        config=Config(retries={"total_max_attempts": 1}, parameter_validation=validate),
    )


def capture(client: Any, operation: str, params: dict[str, Any]) -> WireRequest:
    """Serialize ``params`` with botocore and return the HTTP request it would send."""

    def before_send(request: AWSPreparedRequest, **_: Any) -> None:
        raise Captured(request)

    client.meta.events.register("before-send", before_send)
    try:
        getattr(client, xform_name(operation))(**params)
    except Captured as captured:
        return _wire(captured.request)
    finally:
        client.meta.events.unregister("before-send", before_send)
    raise AssertionError("request was not captured")


def _wire(request: AWSPreparedRequest) -> WireRequest:
    url = urlsplit(request.url)
    body = request.body
    if body is None:
        body = b""
    elif isinstance(body, str):
        body = body.encode("utf-8")
    elif not isinstance(body, bytes):
        body = body.read()
    headers = {
        k: v.decode("latin-1") if isinstance(v, bytes) else v for k, v in request.headers.items()
    }
    return WireRequest(
        method=request.method,
        raw_path=url.path,
        query=parse_qs(url.query, keep_blank_values=True),
        headers=HeaderMap(headers),
        body=body,
    )


class _Raw(io.BytesIO):
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.getvalue()


def parse_response(
    op_model: OperationModel, status: int, headers: list[tuple[str, str]], body: bytes
) -> dict[str, Any]:
    """What botocore's client returns (or puts on ClientError.response) for this response."""
    from botocore.awsrequest import AWSResponse
    from botocore.endpoint import convert_to_response_dict

    raw_headers = {k: v for k, v in headers}
    http = AWSResponse("http://wire.invalid", status, raw_headers, _Raw(body))
    response = convert_to_response_dict(http, op_model)
    parser = create_parser(op_model.metadata["protocol"])
    parsed: dict[str, Any] = parser.parse(response, op_model.output_shape)
    if status >= 300:
        code = parsed.get("Error", {}).get("Code")
        shape = op_model.service_model.shape_for_error_code(code)
        if shape is not None:
            modeled = parser.parse(response, shape)
            parsed["Error"].update(modeled)
    return parsed


# ------------------------------------------------------------------ sample input


def sample_input(op_model: OperationModel) -> dict[str, Any]:
    """A value for every input member, shaped to exercise each wire location."""
    shape = op_model.input_shape
    if shape is None:
        return {}
    params: dict[str, Any] = {}
    for name, member in shape.members.items():
        location = member.serialization.get("location", "body")
        params[name] = _sample(member, location, set())
    return params


def _sample(shape: Shape, location: str, stack: set[str]) -> Any:
    kind = shape.type_name
    meta = shape.metadata
    if kind == "string":
        if meta.get("enum"):
            return meta["enum"][0]
        text = {
            "uri": "arn:aws:lambda:us-east-1:123456789012:function:my-fn:prod/a b",
            "querystring": "q v&=+/\u00e9",
            "header": "hdr-value",
        }.get(location, 'body "\u00e9" text')
        high, low = meta.get("max"), meta.get("min") or 0
        if high is not None:
            text = text[:high]
        return text + "x" * max(0, low - len(text))
    if kind in ("integer", "long"):
        low, high = meta.get("min"), meta.get("max")
        value = 7 if low is None else max(int(low), 7)
        return value if high is None else min(value, int(high))
    if kind in ("double", "float"):
        low, high = meta.get("min"), meta.get("max")
        value = 0.5 if low is None else max(float(low), 0.5)
        return value if high is None else min(value, float(high))
    if kind == "boolean":
        return True
    if kind == "timestamp":
        return SAMPLE_TIME
    if kind == "blob":
        return b"\x00\xffbinary"
    if kind == "list":
        count = max(1, meta.get("min") or 1)
        return [_sample(shape.member, location, stack) for _ in range(count)]
    if kind == "map":
        return {"key1": _sample(shape.value, location, stack)}
    if kind == "structure":
        if shape.is_document_type:
            return {"doc": [1, "two"]}
        if shape.name in stack:
            return {}
        inner = stack | {shape.name}
        out: dict[str, Any] = {}
        for name, member in shape.members.items():
            if member.name in inner and name not in shape.required_members:
                continue
            out[name] = _sample(member, "body", inner)
            if meta.get("union"):
                break
        return out
    raise AssertionError(f"no sample for {kind}")
