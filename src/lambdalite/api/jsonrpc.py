"""The awsJson1.1 protocol, used by CloudWatch Logs.

Every request is ``POST /`` with ``X-Amz-Target: <targetPrefix>.<Operation>`` and the whole
input as a JSON body; responses are the output as JSON, and errors carry their code in the
body's ``__type``. Body values use the same encoding as rest-json bodies, so the value codec
is shared with ``protocol``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambdalite.api.protocol import (
    Response,
    ValueEncoder,
    decode_value,
    dumps,
    load_json_body,
)
from lambdalite.api.spec import OperationSpec, ServiceSpec
from lambdalite.core.errors import LambdaError


class JsonRpcProtocol:
    """Request parsing and response rendering for one awsJson service."""

    def __init__(self, spec: ServiceSpec) -> None:
        if spec.target_prefix is None:
            raise ValueError(f"service {spec.name!r} has no targetPrefix: not an awsJson model")
        self.spec = spec
        self.target_prefix: str = spec.target_prefix
        self.content_type = f"application/x-amz-json-{spec.json_version or '1.1'}"
        self._encoder = ValueEncoder()

    def operation_for_target(self, target: str) -> OperationSpec | None:
        """The operation named by an ``X-Amz-Target`` header, if it belongs to this service."""
        prefix, dot, name = target.partition(".")
        if not dot or prefix != self.target_prefix:
            return None
        return self.spec.operations.get(name)

    def parse_request(self, op: OperationSpec, body: bytes) -> dict[str, Any]:
        document = load_json_body(body)
        shape = op.input_shape
        if shape is None:
            return {}
        params: dict[str, Any] = decode_value(shape, document, "")
        return params

    def serialize_response(
        self, op: OperationSpec, output: Mapping[str, Any], request_id: str | None = None
    ) -> Response:
        headers = self._headers(request_id)
        if op.output_shape is None:
            return 200, headers, b""
        return 200, headers, dumps(self._encoder.encode(op.output_shape, dict(output)))

    def serialize_error(self, error: LambdaError, request_id: str | None = None) -> Response:
        """``{"__type": code, "message": ...}``; caller faults are 400 in this protocol."""
        document: dict[str, Any] = {"__type": error.code, "message": error.message}
        document.update(error.extra)
        headers = self._headers(request_id)
        headers.extend(error.headers.items())
        status = error.status if error.status >= 500 or error.status == 413 else 400
        return status, headers, dumps(document)

    def _headers(self, request_id: str | None) -> list[tuple[str, str]]:
        headers = [("Content-Type", self.content_type)]
        if request_id is not None:
            headers.insert(0, ("x-amzn-RequestId", request_id))
        return headers
