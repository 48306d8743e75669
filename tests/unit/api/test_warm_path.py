"""What the API remembers between requests on the warm path never changes an answer."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from lambdalite.api.asgi import new_request_id
from lambdalite.api.serving import _CoalescingTransport, send_whole
from lambdalite.api.spec import ServiceSpec
from lambdalite.api.validation import Validator
from lambdalite.core.errors import ValidationException

INVOKE_PATH = b"/2015-03-31/functions/my-fn/invocations"
LAYER_ARN = "arn:aws:lambda:us-east-1:123456789012:layer:my-layer:1"


def test_request_ids_are_random_version_4_uuids() -> None:
    seen = set()
    for _ in range(2000):
        text = new_request_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        seen.add(text)
    assert len(seen) == 2000


def test_remembered_routes_are_never_shared_between_requests(lambda_spec: ServiceSpec) -> None:
    for _ in range(2):
        found = lambda_spec.match("POST", INVOKE_PATH, {})
        assert found is not None
        op, params = found
        assert (op.name, params) == ("Invoke", {"FunctionName": "my-fn"})
        params["FunctionName"] = "changed by a caller"
    for _ in range(2):
        assert lambda_spec.match("POST", b"/2015-03-31/nothing/here", {}) is None


def test_the_query_still_picks_the_operation(lambda_spec: ServiceSpec) -> None:
    path = b"/2018-10-31/layers"
    by_arn = {"find": ["LayerVersion"], "Arn": [LAYER_ARN]}
    for query, name in [({}, "ListLayers"), (by_arn, "GetLayerVersionByArn"), ({}, "ListLayers")]:
        found = lambda_spec.match("GET", path, query)
        assert found is not None and found[0].name == name


@pytest.mark.parametrize(
    "params",
    [
        {"FunctionName": "my fn!"},
        {"FunctionName": "my-fn", "InvocationType": "Sometimes"},
        {"FunctionName": "my-fn", "Qualifier": "x" * 200},
        {"Payload": b"{}"},
    ],
)
def test_a_remembered_verdict_never_hides_an_error(
    lambda_spec: ServiceSpec, params: dict[str, Any]
) -> None:
    validator = Validator()
    op = lambda_spec.operation("Invoke")
    for _ in range(2):
        validator.validate(op, {"FunctionName": "my-fn", "Payload": b"{}"})
        for _ in range(2):
            with pytest.raises(ValidationException):
                validator.validate(op, params)


def test_a_whole_response_leaves_in_one_write() -> None:
    async def scenario() -> list[bytes]:
        wire = _Wire()
        transport = _CoalescingTransport(wire, asyncio.get_running_loop())  # type: ignore[arg-type]
        head = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n"

        async def send(message: dict[str, Any]) -> None:
            transport.write(head if message["type"] == "http.response.start" else message["body"])

        start = {"type": "http.response.start"}
        await send_whole(send, start, {"type": "http.response.body", "body": b"null"})
        await asyncio.sleep(0)
        assert wire.writes == [head + b"null"]
        # A head on its own (a HEAD request, a stream not started) still goes out by itself.
        await send(start)
        await asyncio.sleep(0)
        return wire.writes

    writes = asyncio.run(scenario())
    assert writes[1:] == [b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n"]


class _Wire:
    """Stands in for the socket transport: records what would go out."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return False
