"""Every operation of the Lambda model, serialized by botocore, routes and parses back."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.loaders import Loader
from botocore.model import ServiceModel

from lambdalite.api.protocol import parse_request
from lambdalite.api.spec import ServiceSpec

from .wire import capture, make_client, sample_input

_MODEL = ServiceModel(Loader().load_service_model("lambda", "service-2"), "lambda")
ALL_OPERATIONS = sorted(_MODEL.operation_names)


@pytest.fixture(scope="module")
def client() -> Any:
    return make_client("lambda")


@pytest.mark.parametrize("operation", ALL_OPERATIONS)
def test_botocore_request_routes_and_parses_back(
    lambda_spec: ServiceSpec, client: Any, operation: str
) -> None:
    op = lambda_spec.operation(operation)
    params = sample_input(op.model)
    wire = capture(client, operation, params)

    found = lambda_spec.match(wire.method, wire.raw_path, wire.query)

    assert found is not None, f"{wire.method} {wire.raw_path} {wire.query}"
    assert found[0] is op
    assert parse_request(op, found[1], wire.query, wire.headers, wire.body) == params


def test_spec_covers_the_whole_model(lambda_spec: ServiceSpec) -> None:
    assert set(lambda_spec.operations) == set(ALL_OPERATIONS)
    assert lambda_spec.operation("CreateFunction").success_status == 201
    assert lambda_spec.operation("Invoke").input_payload is not None


def test_percent_encoded_arn_is_captured_whole(lambda_spec: ServiceSpec) -> None:
    arn = "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Amy-fn"
    found = lambda_spec.match("GET", f"/2017-03-31/tags/{arn}", {})
    assert found is not None
    assert found[0].name == "ListTags"
    assert found[1] == {"Resource": "arn:aws:lambda:us-east-1:123456789012:function:my-fn"}


def test_unencoded_colons_stay_in_one_segment(lambda_spec: ServiceSpec) -> None:
    found = lambda_spec.match("POST", "/2015-03-31/functions/my-fn:prod/invocations", {})
    assert found is not None
    assert (found[0].name, found[1]) == ("Invoke", {"FunctionName": "my-fn:prod"})


def test_encoded_slash_does_not_split_a_label(lambda_spec: ServiceSpec) -> None:
    found = lambda_spec.match("GET", b"/2025-12-01/durable-executions/a%2Fb%2Fc/history", {})
    assert found is not None
    assert (found[0].name, found[1]) == (
        "GetDurableExecutionHistory",
        {"DurableExecutionArn": "a/b/c"},
    )


@pytest.mark.parametrize("path", ["/2015-03-31/functions", "/2015-03-31/functions/"])
def test_trailing_slash_is_accepted(lambda_spec: ServiceSpec, path: str) -> None:
    found = lambda_spec.match("GET", path, {})
    assert found is not None and found[0].name == "ListFunctions"
    created = lambda_spec.match("POST", path, {})
    assert created is not None and created[0].name == "CreateFunction"


def test_layer_query_discriminator(lambda_spec: ServiceSpec) -> None:
    by_arn = lambda_spec.match(
        "GET", "/2018-10-31/layers", {"find": ["LayerVersion"], "Arn": ["arn:x"]}
    )
    plain = lambda_spec.match("GET", "/2018-10-31/layers", {"MaxItems": ["5"]})
    assert by_arn is not None and by_arn[0].name == "GetLayerVersionByArn"
    assert plain is not None and plain[0].name == "ListLayers"


def test_provisioned_concurrency_list_discriminator(lambda_spec: ServiceSpec) -> None:
    path = "/2019-09-30/functions/my-fn/provisioned-concurrency"
    listed = lambda_spec.match("GET", path, {"List": ["ALL"]})
    single = lambda_spec.match("GET", path, {"Qualifier": ["prod"]})
    other_value = lambda_spec.match("GET", path, {"List": ["SOME"]})
    assert listed is not None and listed[0].name == "ListProvisionedConcurrencyConfigs"
    assert single is not None and single[0].name == "GetProvisionedConcurrencyConfig"
    assert other_value is not None and other_value[0].name == "GetProvisionedConcurrencyConfig"


def test_put_and_post_event_invoke_config_differ(lambda_spec: ServiceSpec) -> None:
    path = "/2019-09-25/functions/f/event-invoke-config"
    put = lambda_spec.match("PUT", path, {})
    post = lambda_spec.match("POST", path, {})
    assert put is not None and put[0].name == "PutFunctionEventInvokeConfig"
    assert post is not None and post[0].name == "UpdateFunctionEventInvokeConfig"


def test_response_streaming_invocation_routes(lambda_spec: ServiceSpec) -> None:
    found = lambda_spec.match(
        "POST", "/2021-11-15/functions/my-fn/response-streaming-invocations", {}
    )
    assert found is not None
    assert found[0].name == "InvokeWithResponseStream"
    assert found[0].streams_output


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/2015-03-31"),
        ("GET", "/2015-03-31/functions/f/nonsense"),
        ("PATCH", "/2015-03-31/functions/f"),
        ("GET", "/1999-01-01/functions"),
    ],
)
def test_unknown_requests_do_not_match(lambda_spec: ServiceSpec, method: str, path: str) -> None:
    assert lambda_spec.match(method, path, {}) is None


def test_error_message_member_follows_the_model(lambda_spec: ServiceSpec) -> None:
    assert lambda_spec.message_member("ResourceNotFoundException") == "Message"
    assert lambda_spec.message_member("ResourceConflictException") == "message"
    assert lambda_spec.message_member("ValidationException") == "message"
    assert lambda_spec.message_member("SomethingUnknown") == "message"


def _synthetic_spec() -> ServiceSpec:
    """A tiny rest-json model with a greedy label and a label-first template."""
    string = {"type": "string"}
    model = {
        "metadata": {"protocol": "rest-json", "apiVersion": "2020-01-01", "endpointPrefix": "t"},
        "operations": {
            "GetObject": {
                "name": "GetObject",
                "http": {"method": "GET", "requestUri": "/{Bucket}/{Key+}"},
                "input": {"shape": "ObjectRequest"},
            },
            "GetObjectAcl": {
                "name": "GetObjectAcl",
                "http": {"method": "GET", "requestUri": "/{Bucket}/{Key+}/acl"},
                "input": {"shape": "ObjectRequest"},
            },
            "GetBucket": {
                "name": "GetBucket",
                "http": {"method": "GET", "requestUri": "/{Bucket}"},
                "input": {"shape": "BucketRequest"},
            },
            "PutThing": {
                "name": "PutThing",
                "http": {"method": "POST", "requestUri": "/{Bucket}/thing"},
                "input": {"shape": "ThingRequest"},
            },
        },
        "shapes": {
            "String": string,
            "Json": {"type": "string"},
            "Time": {"type": "timestamp"},
            "Flag": {"type": "boolean"},
            "ThingRequest": {
                "type": "structure",
                "members": {
                    "Bucket": {"shape": "String", "location": "uri", "locationName": "Bucket"},
                    "Meta": {
                        "shape": "Json",
                        "location": "header",
                        "locationName": "X-Meta",
                        "jsonvalue": True,
                    },
                    "When": {"shape": "Time", "location": "header", "locationName": "X-When"},
                    "Since": {"shape": "Time", "location": "querystring", "locationName": "since"},
                    "Dry": {"shape": "Flag", "location": "querystring", "locationName": "dry"},
                    "Note": {"shape": "String"},
                },
            },
            "ObjectRequest": {
                "type": "structure",
                "required": ["Bucket", "Key"],
                "members": {
                    "Bucket": {"shape": "String", "location": "uri", "locationName": "Bucket"},
                    "Key": {"shape": "String", "location": "uri", "locationName": "Key"},
                },
            },
            "BucketRequest": {
                "type": "structure",
                "required": ["Bucket"],
                "members": {
                    "Bucket": {"shape": "String", "location": "uri", "locationName": "Bucket"}
                },
            },
        },
    }
    return ServiceSpec(ServiceModel(model, service_name="synthetic"))


def test_greedy_and_label_first_templates() -> None:
    spec = _synthetic_spec()
    obj = spec.match("GET", "/b/dir/sub%20dir/file.txt", {})
    assert obj is not None
    assert (obj[0].name, obj[1]) == ("GetObject", {"Bucket": "b", "Key": "dir/sub dir/file.txt"})
    acl = spec.match("GET", "/b/dir/file.txt/acl", {})
    assert acl is not None
    assert (acl[0].name, acl[1]) == ("GetObjectAcl", {"Bucket": "b", "Key": "dir/file.txt"})
    bucket = spec.match("GET", "/my%2Dbucket/", {})
    assert bucket is not None
    assert (bucket[0].name, bucket[1]) == ("GetBucket", {"Bucket": "my-bucket"})


def test_path_segments_are_decoded_exactly_once(lambda_spec: ServiceSpec) -> None:
    found = lambda_spec.match("GET", "/2015-03-31/functions/a%2541b", {})
    assert found is not None
    assert found[1] == {"FunctionName": "a%41b"}


def test_header_traits_round_trip_through_botocores_serializer() -> None:
    import datetime as dt

    from botocore.serialize import create_serializer

    from lambdalite.api.protocol import HeaderMap

    spec = _synthetic_spec()
    op = spec.operation("PutThing")
    when = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
    params = {
        "Bucket": "b",
        "Meta": {"k": [1, "two"]},
        "When": when,
        "Since": when,
        "Dry": False,
        "Note": "n",
    }
    request = create_serializer("rest-json").serialize_to_request(params, op.model)
    query = {k: [str(v)] for k, v in request["query_string"].items()}
    found = spec.match(request["method"], request["url_path"], query)
    assert found is not None and found[0] is op
    parsed = parse_request(op, found[1], query, HeaderMap(request["headers"]), request["body"])
    assert parsed == params
