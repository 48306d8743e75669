"""rest-json responses and errors, read back by botocore's own response parser."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from botocore.response import StreamingBody

from lambdalite.api.protocol import HeaderMap, parse_request, serialize_error, serialize_response
from lambdalite.api.spec import ServiceSpec
from lambdalite.core.errors import (
    InvalidParameterValueException,
    InvalidRequestContentException,
    LambdaError,
    ResourceConflictException,
    ResourceNotFoundException,
    ServiceException,
    TooManyRequestsException,
    ValidationException,
)

from .wire import _sample, parse_response

STREAMING = {"InvokeWithResponseStream"}


def _sample_output(spec: ServiceSpec, name: str) -> dict[str, Any]:
    shape = spec.operation(name).output_shape
    if shape is None:
        return {}
    out: dict[str, Any] = {}
    for member_name, member in shape.members.items():
        location = member.serialization.get("location", "body")
        out[member_name] = 202 if location == "statusCode" else _sample(member, location, set())
    return out


def _without_metadata(parsed: dict[str, Any]) -> dict[str, Any]:
    result = {k: v for k, v in parsed.items() if k != "ResponseMetadata"}
    for key, value in result.items():
        if isinstance(value, StreamingBody):
            result[key] = value.read()
    return result


def test_every_operation_output_round_trips(lambda_spec: ServiceSpec) -> None:
    checked = 0
    for name, op in lambda_spec.operations.items():
        if name in STREAMING:
            continue
        output = _sample_output(lambda_spec, name)
        status, headers, body = serialize_response(op, output, "req-1")
        parsed = parse_response(op.model, status, headers, body)
        assert parsed["ResponseMetadata"]["RequestId"] == "req-1", name
        assert _without_metadata(parsed) == output, name
        checked += 1
    assert checked == len(lambda_spec.operations) - len(STREAMING)


def test_invoke_response_uses_headers_status_and_raw_payload(lambda_spec: ServiceSpec) -> None:
    op = lambda_spec.operation("Invoke")
    output = {
        "StatusCode": 200,
        "FunctionError": "Unhandled",
        "ExecutedVersion": "$LATEST",
        "LogResult": base64.b64encode(b"START").decode(),
        "Payload": b'{"errorMessage":"boom"}',
    }
    status, headers, body = serialize_response(op, output, "rid")
    assert status == 200
    assert ("X-Amz-Function-Error", "Unhandled") in headers
    assert ("X-Amz-Executed-Version", "$LATEST") in headers
    assert body == b'{"errorMessage":"boom"}'
    assert ("x-amzn-RequestId", "rid") in headers


def test_async_invoke_status_comes_from_output(lambda_spec: ServiceSpec) -> None:
    status, _, body = serialize_response(lambda_spec.operation("Invoke"), {"StatusCode": 202})
    assert (status, body) == (202, b"")


def test_default_status_is_the_models_response_code(lambda_spec: ServiceSpec) -> None:
    status, headers, body = serialize_response(
        lambda_spec.operation("CreateFunction"), {"FunctionName": "f"}
    )
    assert status == 201
    assert ("Content-Type", "application/json") in headers
    assert json.loads(body) == {"FunctionName": "f"}
    assert serialize_response(lambda_spec.operation("DeleteAlias"), {})[::2] == (204, b"")


def test_timestamp_type_is_epoch_seconds_and_string_timestamps_pass(
    lambda_spec: ServiceSpec,
) -> None:
    import datetime as dt

    when = dt.datetime(2019, 9, 24, 0, 22, 0, 333000, tzinfo=dt.timezone.utc)
    esm = serialize_response(lambda_spec.operation("GetEventSourceMapping"), {"LastModified": when})
    assert json.loads(esm[2]) == {"LastModified": 1569284520.333}
    config = serialize_response(
        lambda_spec.operation("GetFunctionConfiguration"),
        {"LastModified": "2020-04-10T19:06:32.563+0000"},
    )
    assert json.loads(config[2]) == {"LastModified": "2020-04-10T19:06:32.563+0000"}


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (ResourceNotFoundException("Function not found: arn:x"), "ResourceNotFoundException", 404),
        (ResourceConflictException("Function already exist: f"), "ResourceConflictException", 409),
        (ValidationException("1 validation error detected: x"), "ValidationException", 400),
        (InvalidParameterValueException("bad"), "InvalidParameterValueException", 400),
        (ServiceException("internal"), "ServiceException", 500),
    ],
)
def test_errors_parse_back_in_botocore(
    lambda_spec: ServiceSpec, error: LambdaError, code: str, status: int
) -> None:
    op = lambda_spec.operation("GetFunction")
    got_status, headers, body = serialize_error(error, lambda_spec, "rid-9")
    parsed = parse_response(op.model, got_status, headers, body)
    assert got_status == status
    assert parsed["Error"]["Code"] == code
    assert parsed["Error"]["Message"] == error.message
    assert parsed["ResponseMetadata"]["RequestId"] == "rid-9"
    assert parsed["Error"].get("Type", "User") == ("User" if error.sender_fault else "Service")


def test_message_key_follows_the_error_shape(lambda_spec: ServiceSpec) -> None:
    not_found = json.loads(serialize_error(ResourceNotFoundException("m"), lambda_spec)[2])
    conflict = json.loads(serialize_error(ResourceConflictException("m"), lambda_spec)[2])
    assert not_found == {"Type": "User", "Message": "m"}
    assert conflict == {"Type": "User", "message": "m"}


def test_throttle_carries_reason_and_retry_after(lambda_spec: ServiceSpec) -> None:
    error = TooManyRequestsException(
        "Rate Exceeded.", "ReservedFunctionConcurrentInvocationLimitExceeded", retry_after=3
    )
    status, headers, body = serialize_error(error, lambda_spec, "rid")
    parsed = parse_response(lambda_spec.operation("Invoke").model, status, headers, body)
    assert status == 429
    assert ("Retry-After", "3") in headers
    assert parsed["Error"]["Code"] == "TooManyRequestsException"
    assert parsed["Error"]["Message"] == "Rate Exceeded."
    assert parsed["Error"]["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert parsed["Error"]["retryAfterSeconds"] == "3"
    assert ("x-amzn-ErrorType", "TooManyRequestsException") in headers


# ------------------------------------------------------------------ request parsing


def test_invoke_body_is_raw_and_needs_no_content_type(lambda_spec: ServiceSpec) -> None:
    op = lambda_spec.operation("Invoke")
    headers = HeaderMap({"X-AMZ-INVOCATION-TYPE": "Event", "x-amz-log-type": "Tail"})
    params = parse_request(op, {"FunctionName": "f"}, {}, headers, b"not json at all")
    assert params == {
        "FunctionName": "f",
        "InvocationType": "Event",
        "LogType": "Tail",
        "Payload": b"not json at all",
    }
    empty = parse_request(op, {"FunctionName": "f"}, {}, {}, b"")
    assert empty == {"FunctionName": "f", "Payload": b""}


def test_query_members_are_typed(lambda_spec: ServiceSpec) -> None:
    op = lambda_spec.operation("ListFunctions")
    params = parse_request(op, {}, {"MaxItems": ["5"], "Marker": ["m"]}, {}, b"")
    assert params == {"MaxItems": 5, "Marker": "m"}
    untag = lambda_spec.operation("UntagResource")
    assert parse_request(untag, {"Resource": "arn"}, {"tagKeys": ["a", "b"]}, {}, b"") == {
        "Resource": "arn",
        "TagKeys": ["a", "b"],
    }
    with pytest.raises(InvalidParameterValueException):
        parse_request(op, {}, {"MaxItems": ["many"]}, {}, b"")


def test_json_blobs_are_decoded(lambda_spec: ServiceSpec) -> None:
    op = lambda_spec.operation("CreateFunction")
    body = json.dumps({"FunctionName": "f", "Code": {"ZipFile": "UEsDBA=="}, "Bogus": 1})
    params = parse_request(op, {}, {}, {}, body.encode())
    assert params == {"FunctionName": "f", "Code": {"ZipFile": b"PK\x03\x04"}}


def test_empty_json_body_is_an_empty_input(lambda_spec: ServiceSpec) -> None:
    assert parse_request(lambda_spec.operation("CreateFunction"), {}, {}, {}, b"") == {}


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"Code": {"ZipFile": "***"}}', b'{"MemorySize": "big"}', b"[1, 2]"],
)
def test_bad_bodies_are_invalid_request_content(lambda_spec: ServiceSpec, body: bytes) -> None:
    with pytest.raises(InvalidRequestContentException) as info:
        parse_request(lambda_spec.operation("CreateFunction"), {}, {}, {}, body)
    assert info.value.message.startswith("Could not parse request body into json: ")
    assert info.value.status == 400
