"""The awsJson1.1 binding for CloudWatch Logs, checked against botocore's serializer/parser."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.loaders import Loader
from botocore.model import ServiceModel

from lambdalite.api.jsonrpc import JsonRpcProtocol
from lambdalite.api.spec import ServiceSpec
from lambdalite.core.errors import LambdaError, ServiceException

from .wire import _sample, capture, make_client, parse_response, sample_input

_MODEL = ServiceModel(Loader().load_service_model("logs", "service-2"), "logs")
# Operations whose output is an event stream (StartLiveTail) are outside this binding.
OPERATIONS = sorted(
    name
    for name in _MODEL.operation_names
    if not _MODEL.operation_model(name).has_event_stream_output
)


class ResourceAlreadyExistsException(LambdaError):
    code = "ResourceAlreadyExistsException"
    status = 400
    sender_fault = True


@pytest.fixture(scope="module")
def protocol(logs_spec: ServiceSpec) -> JsonRpcProtocol:
    return JsonRpcProtocol(logs_spec)


@pytest.fixture(scope="module")
def client() -> Any:
    return make_client("logs")


@pytest.mark.parametrize("operation", OPERATIONS)
def test_request_resolves_and_parses_back(
    protocol: JsonRpcProtocol, client: Any, operation: str
) -> None:
    op = protocol.spec.operation(operation)
    params = sample_input(op.model)
    wire = capture(client, operation, params)

    assert (wire.method, wire.raw_path) == ("POST", "/")
    resolved = protocol.operation_for_target(wire.headers["x-amz-target"])
    assert resolved is op
    assert protocol.parse_request(op, wire.body) == params


@pytest.mark.parametrize("operation", OPERATIONS)
def test_response_parses_back(protocol: JsonRpcProtocol, operation: str) -> None:
    op = protocol.spec.operation(operation)
    shape = op.output_shape
    output = {} if shape is None else _sample(shape, "body", set())
    status, headers, body = protocol.serialize_response(op, output, "rid")
    parsed = parse_response(op.model, status, headers, body)
    assert status == 200
    assert ("Content-Type", "application/x-amz-json-1.1") in headers
    assert parsed.pop("ResponseMetadata")["RequestId"] == "rid"
    assert parsed == output


def test_foreign_or_unknown_targets_resolve_to_nothing(protocol: JsonRpcProtocol) -> None:
    assert protocol.operation_for_target("Logs_20140328.NoSuchThing") is None
    assert protocol.operation_for_target("AWSLambda.Invoke") is None
    assert protocol.operation_for_target("garbage") is None


def test_client_error_is_400_with_type(protocol: JsonRpcProtocol) -> None:
    op = protocol.spec.operation("CreateLogGroup")
    error = ResourceAlreadyExistsException("The specified log group already exists")
    status, headers, body = protocol.serialize_error(error, "rid")
    parsed = parse_response(op.model, status, headers, body)
    assert status == 400
    assert json.loads(body) == {
        "__type": "ResourceAlreadyExistsException",
        "message": "The specified log group already exists",
    }
    assert parsed["Error"]["Code"] == "ResourceAlreadyExistsException"
    assert parsed["Error"]["Message"] == "The specified log group already exists"


def test_not_found_is_400_in_this_protocol(protocol: JsonRpcProtocol) -> None:
    from lambdalite.core.errors import ResourceNotFoundException

    status, _, body = protocol.serialize_error(ResourceNotFoundException("gone"))
    assert status == 400
    assert json.loads(body)["__type"] == "ResourceNotFoundException"


def test_server_fault_keeps_5xx(protocol: JsonRpcProtocol) -> None:
    status, _, _ = protocol.serialize_error(ServiceException("boom"))
    assert status == 500


def test_a_rest_json_model_is_refused(lambda_spec: ServiceSpec) -> None:
    with pytest.raises(ValueError, match="targetPrefix"):
        JsonRpcProtocol(lambda_spec)
