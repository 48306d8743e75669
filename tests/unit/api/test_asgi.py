"""The ASGI app behind a real uvicorn listener, driven by botocore clients and httpx."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from botocore.exceptions import ClientError

from lambdalite.api.asgi import AwsAsgiApp, Handler, RequestContext, Scope
from lambdalite.api.spec import ServiceSpec
from lambdalite.core.errors import LambdaError, ResourceNotFoundException

from .wire import make_client

MAX_BODY = 64 * 1024


class ResourceAlreadyExistsException(LambdaError):
    code = "ResourceAlreadyExistsException"
    status = 400
    sender_fault = True


async def create_function(params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
    return {
        "FunctionName": params["FunctionName"],
        "MemorySize": params.get("MemorySize", 128),
        "CodeSize": len(params["Code"]["ZipFile"]),
        "LastModified": "2024-01-02T03:04:05.000+0000",
    }


async def get_function(params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
    raise ResourceNotFoundException(f"Function not found: {params['FunctionName']}")


async def list_functions(params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
    raise RuntimeError("database password is hunter2")


async def list_tags(params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
    return {
        "Tags": {
            "resource": params["Resource"],
            "request-id": ctx.request_id,
            "operation": ctx.operation,
            "client": str(ctx.client_host),
            "agent": "yes" if ctx.headers.get("USER-AGENT") else "no",
        }
    }


async def invoke(params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
    if params.get("InvocationType") == "Event":
        return {"StatusCode": 202}
    return {
        "StatusCode": 200,
        "ExecutedVersion": "$LATEST",
        "Payload": json.dumps({"got": params["Payload"].decode(), "fn": params["FunctionName"]}),
    }


async def stream(params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"one,", b"two,", b"three"):
            yield part

    return {"StatusCode": 200, "ResponseStreamContentType": "text/plain", "EventStream": chunks()}


async def describe_log_groups(params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
    prefix = params.get("logGroupNamePrefix", "")
    return {
        "logGroups": [{"logGroupName": f"{prefix}/aws/lambda/f", "creationTime": 1700000000000}]
    }


async def create_log_group(params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
    raise ResourceAlreadyExistsException("The specified log group already exists")


async def download(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-raw", b"1")]})
    await send({"type": "http.response.body", "body": scope["path"].encode()})


LAMBDA: dict[str, Handler] = {
    "CreateFunction": create_function,
    "GetFunction": get_function,
    "ListFunctions": list_functions,
    "ListTags": list_tags,
    "Invoke": invoke,
    "InvokeWithResponseStream": stream,
}
LOGS: dict[str, Handler] = {
    "DescribeLogGroups": describe_log_groups,
    "CreateLogGroup": create_log_group,
}


@pytest.fixture(scope="module")
def started() -> list[str]:
    return []


@pytest.fixture(scope="module")
def endpoint(lambda_spec: ServiceSpec, logs_spec: ServiceSpec, started: list[str]) -> Iterator[str]:
    async def on_startup() -> None:
        started.append("up")

    app = AwsAsgiApp(
        lambda_spec,
        LAMBDA,
        LOGS,
        [("GET", "/_code/", download)],
        logs_spec=logs_spec,
        max_body_bytes=MAX_BODY,
        on_startup=[on_startup],
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)


@pytest.fixture(scope="module")
def lam(endpoint: str) -> Any:
    return make_client("lambda", endpoint, validate=False)


@pytest.fixture(scope="module")
def logs(endpoint: str) -> Any:
    return make_client("logs", endpoint)


def test_startup_hook_ran(endpoint: str, started: list[str]) -> None:
    assert started == ["up"]


def test_create_function_round_trip(lam: Any) -> None:
    result = lam.create_function(
        FunctionName="my-fn",
        Role="arn:aws:iam::123456789012:role/r",
        Code={"ZipFile": b"PK\x03\x04zip"},
        Runtime="python3.12",
        Handler="app.handler",
        MemorySize=256,
    )
    assert result["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert (result["FunctionName"], result["MemorySize"], result["CodeSize"]) == ("my-fn", 256, 7)
    assert len(result["ResponseMetadata"]["RequestId"]) == 36


def test_invoke_sync_and_async(lam: Any) -> None:
    sync = lam.invoke(FunctionName="my-fn:prod", Payload=b'{"k": 1}')
    assert sync["StatusCode"] == 200
    assert sync["ExecutedVersion"] == "$LATEST"
    assert json.loads(sync["Payload"].read()) == {"got": '{"k": 1}', "fn": "my-fn:prod"}
    event = lam.invoke(FunctionName="my-fn", InvocationType="Event", Payload=b"{}")
    assert event["StatusCode"] == 202


def test_context_carries_request_details(lam: Any) -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:my-fn"
    result = lam.list_tags(Resource=arn)
    tags = result["Tags"]
    assert tags["resource"] == arn
    assert tags["request-id"] == result["ResponseMetadata"]["RequestId"]
    assert tags["operation"] == "ListTags"
    assert tags["client"] == "127.0.0.1"
    assert tags["agent"] == "yes"


def test_handler_lambda_error_reaches_the_client(lam: Any) -> None:
    with pytest.raises(ClientError) as info:
        lam.get_function(FunctionName="ghost")
    error = info.value.response
    assert error["Error"]["Code"] == "ResourceNotFoundException"
    assert error["Error"]["Message"] == "Function not found: ghost"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_unexpected_exception_is_a_plain_service_exception(
    lam: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ClientError) as info:
        lam.list_functions()
    error = info.value.response
    assert error["Error"]["Code"] == "ServiceException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "hunter2" not in json.dumps(error, default=str)
    assert "Traceback" not in error["Error"]["Message"]
    logged = [r for r in caplog.records if r.name == "lambdalite.api.asgi"]
    assert any(r.exc_info and "hunter2" in str(r.exc_info[1]) for r in logged)


def test_validation_happens_before_the_handler(lam: Any) -> None:
    with pytest.raises(ClientError) as info:
        lam.create_function(
            FunctionName="my-fn",
            Role="arn:aws:iam::123456789012:role/r",
            Code={"ZipFile": b"PK"},
            MemorySize=100,
        )
    error = info.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Code"] == "ValidationException"
    assert error["Error"]["Message"] == (
        "1 validation error detected: Value '100' at 'memorySize' failed to satisfy "
        "constraint: Member must have value greater than or equal to 128"
    )


def test_modelled_operation_without_handler_is_501(lam: Any) -> None:
    with pytest.raises(ClientError) as info:
        lam.list_layers()
    error = info.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert error["Error"]["Code"] == "NotImplementedException"
    assert error["Error"]["Message"] == "Operation ListLayers is not yet implemented by lambdalite"


def test_oversized_body_is_413(lam: Any) -> None:
    with pytest.raises(ClientError) as info:
        lam.invoke(FunctionName="my-fn", Payload=b"x" * (MAX_BODY + 1))
    error = info.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert error["Error"]["Code"] == "RequestEntityTooLargeException"


def test_unknown_route_is_json_404(endpoint: str) -> None:
    response = httpx.get(f"{endpoint}/no/such/thing")
    assert response.status_code == 404
    assert response.headers["x-amzn-errortype"] == "UnknownOperationException"
    assert response.headers["content-type"] == "application/json"
    assert response.json()["Type"] == "User"
    assert "x-amzn-requestid" in response.headers


def test_unparseable_json_is_invalid_request_content(endpoint: str) -> None:
    response = httpx.post(f"{endpoint}/2015-03-31/functions/", content=b"{oops")
    assert response.status_code == 400
    assert response.headers["x-amzn-errortype"] == "InvalidRequestContentException"
    assert response.json()["message"].startswith("Could not parse request body into json: ")


def test_extra_routes_come_first(endpoint: str) -> None:
    response = httpx.get(f"{endpoint}/_code/abc.zip")
    assert (response.status_code, response.text, response.headers["x-raw"]) == (
        200,
        "/_code/abc.zip",
        "1",
    )


def test_event_stream_output_is_streamed(endpoint: str) -> None:
    url = f"{endpoint}/2021-11-15/functions/my-fn/response-streaming-invocations"
    with httpx.stream("POST", url, content=b"{}") as response:
        body = b"".join(response.iter_bytes())
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain"
    assert body == b"one,two,three"


def test_logs_json_protocol(logs: Any) -> None:
    groups = logs.describe_log_groups(logGroupNamePrefix="/x")
    assert groups["logGroups"] == [
        {"logGroupName": "/x/aws/lambda/f", "creationTime": 1700000000000}
    ]
    with pytest.raises(ClientError) as info:
        logs.create_log_group(logGroupName="g")
    assert info.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as missing:
        logs.get_log_events(logGroupName="g", logStreamName="s")
    assert missing.value.response["Error"]["Code"] == "NotImplementedException"
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501


def test_logs_validation_and_unknown_target(endpoint: str) -> None:
    headers = {"X-Amz-Target": "Logs_20140328.DescribeLogGroups"}
    response = httpx.post(f"{endpoint}/", headers=headers, content=b'{"limit": 0}')
    assert response.status_code == 400
    assert response.json() == {
        "__type": "ValidationException",
        "message": "1 validation error detected: Value '0' at 'limit' failed to satisfy "
        "constraint: Member must have value greater than or equal to 1",
    }
    unknown = httpx.post(f"{endpoint}/", headers={"X-Amz-Target": "Nope_1.Thing"}, content=b"{}")
    assert unknown.status_code == 400
    assert unknown.json()["__type"] == "UnknownOperationException"
