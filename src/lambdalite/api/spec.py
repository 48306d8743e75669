"""The AWS service models, reduced to what the wire layer needs at request time.

Everything here is derived from botocore's service model files, never written by hand: the
model already knows every operation's method, URI template, query discriminators, member
locations and status codes, and keeping one source of truth is what keeps the server in step
with the SDKs that talk to it. The model is walked once, when a ``ServiceSpec`` is built, so
that serving a request only touches small precomputed tuples.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

import botocore
from botocore.loaders import Loader
from botocore.model import OperationModel, ServiceModel, Shape, StructureShape

_LABEL = re.compile(r"^\{([^{}]+?)(\+?)\}$")
_PATHS_MAX = 1024


@dataclass(frozen=True, slots=True)
class MemberBinding:
    """Where one member of an input/output structure lives on the wire.

    ``location`` is one of ``uri``, ``querystring``, ``header``, ``headers`` (prefix map),
    ``statusCode``, ``payload`` (the member *is* the body) or ``body`` (a key of the JSON
    body). ``wire_name`` is the URI label, query key, header name (lower-cased for input
    lookups) or JSON key.
    """

    name: str
    wire_name: str
    location: str
    shape: Shape


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class OperationSpec:
    name: str
    method: str
    request_uri: str
    path_template: str
    query_literals: tuple[tuple[str, str | None], ...]
    success_status: int
    model: OperationModel
    input_shape: StructureShape | None
    output_shape: StructureShape | None
    error_shapes: tuple[StructureShape, ...]
    # Input bindings grouped by location, so parsing never re-reads the model.
    uri_members: tuple[MemberBinding, ...]
    query_members: tuple[MemberBinding, ...]
    header_members: tuple[MemberBinding, ...]
    body_members: tuple[MemberBinding, ...]
    input_payload: MemberBinding | None
    # Output bindings.
    output_headers: tuple[MemberBinding, ...]
    output_status: MemberBinding | None
    output_body: tuple[MemberBinding, ...]
    output_payload: MemberBinding | None

    def __repr__(self) -> str:
        return f"<OperationSpec {self.name}: {self.method} {self.request_uri}>"

    @property
    def streams_output(self) -> bool:
        """True when the response body is an event stream (InvokeWithResponseStream)."""
        return self.output_payload is not None and bool(
            self.output_payload.shape.serialization.get("eventstream")
        )


@dataclass(frozen=True, slots=True)
class _Route:
    op: OperationSpec
    # Per segment: literal text, or None for a label (its name is in ``labels``).
    literals: tuple[str | None, ...]
    labels: tuple[str | None, ...]
    greedy_index: int  # -1 when the template has no greedy label
    specificity: tuple[int, int]
    captures: tuple[tuple[int, str], ...]  # (segment index, label) of each label


_Table = tuple[tuple[int, ...], dict[tuple[str, ...], list[_Route]]]


class Router:
    """Matches ``(method, raw path, query)`` to an operation of the model.

    Templates are split into segments at build time. Fixed-length templates are grouped by
    method and segment count, then by which positions hold literals; a lookup is one dict
    probe per literal layout (a handful), keyed by the request's segments at those
    positions. Matching happens on the raw path split at ``/`` *before* percent-decoding,
    because SDKs encode ``/`` inside non-greedy labels as ``%2F``; each segment is decoded
    once. Candidates sharing a path are ordered so the one with more query discriminators
    (``?find=LayerVersion``, ``?List=ALL``) is tried first.
    """

    def __init__(self, operations: Iterable[OperationSpec]) -> None:
        layouts: dict[tuple[str, int], dict[tuple[int, ...], dict[tuple[str, ...], list[_Route]]]]
        layouts = {}
        greedy: dict[str, list[_Route]] = {}
        for op in operations:
            route = _compile(op)
            if route.greedy_index >= 0:
                greedy.setdefault(op.method, []).append(route)
                continue
            positions = tuple(i for i, lit in enumerate(route.literals) if lit is not None)
            values = tuple(route.literals[i] or "" for i in positions)
            by_layout = layouts.setdefault((op.method, len(route.literals)), {})
            by_layout.setdefault(positions, {}).setdefault(values, []).append(route)
        order = lambda r: r.specificity  # noqa: E731
        self._fixed: dict[tuple[str, int], tuple[_Table, ...]] = {}
        for key, by_layout in layouts.items():
            tables = [
                (positions, {v: sorted(rs, key=order, reverse=True) for v, rs in table.items()})
                for positions, table in by_layout.items()
            ]
            tables.sort(key=lambda t: len(t[0]), reverse=True)  # more literals first
            self._fixed[key] = tuple(tables)
        self._greedy = {k: sorted(v, key=order, reverse=True) for k, v in greedy.items()}

    def match(
        self, method: str, raw_path: str | bytes, query: Mapping[str, list[str]]
    ) -> tuple[OperationSpec, dict[str, str]] | None:
        if isinstance(raw_path, str):
            raw_path = raw_path.encode("utf-8")
        if len(raw_path) > 1 and raw_path.endswith(b"/"):
            raw_path = raw_path[:-1]
        raw = raw_path.lstrip(b"/").split(b"/") if raw_path.strip(b"/") else []
        if b"%" in raw_path:
            segments = [_decode(s) for s in raw]
        else:
            segments = raw_path.decode("utf-8", "replace").lstrip("/").split("/") if raw else []
        for positions, table in self._fixed.get((method, len(segments)), ()):
            for route in table.get(tuple([segments[i] for i in positions]), ()):
                if _query_ok(route.op, query):
                    return route.op, {label: segments[i] for i, label in route.captures}
        for route in self._greedy.get(method, ()):
            params = _match_greedy(route, raw, segments)
            if params is not None and _query_ok(route.op, query):
                return route.op, params
        return None


def _decode(segment: bytes) -> str:
    if b"%" in segment:
        return unquote_to_bytes(segment).decode("utf-8", "replace")
    return segment.decode("utf-8", "replace")


def _match_greedy(route: _Route, raw: list[bytes], segments: list[str]) -> dict[str, str] | None:
    head = route.greedy_index
    tail = len(route.literals) - head - 1
    if len(segments) < head + 1 + tail:
        return None
    params: dict[str, str] = {}
    pairs = list(zip(route.literals[:head], route.labels[:head], segments[:head], strict=True))
    if tail:
        pairs += zip(route.literals[-tail:], route.labels[-tail:], segments[-tail:], strict=True)
    for literal, label, segment in pairs:
        if literal is not None:
            if literal != segment:
                return None
        elif label is not None:
            params[label] = segment
    label = route.labels[head]
    assert label is not None
    params[label] = _decode(b"/".join(raw[head : len(raw) - tail]))
    return params


def _query_ok(op: OperationSpec, query: Mapping[str, list[str]]) -> bool:
    for key, value in op.query_literals:
        values = query.get(key)
        if values is None or (value is not None and value not in values):
            return False
    return True


def _compile(op: OperationSpec) -> _Route:
    parts = op.path_template.strip("/").split("/") if op.path_template.strip("/") else []
    literals: list[str | None] = []
    labels: list[str | None] = []
    greedy_index = -1
    for i, part in enumerate(parts):
        label = _LABEL.match(part)
        if label is None:
            literals.append(part)
            labels.append(None)
        else:
            literals.append(None)
            labels.append(label.group(1))
            if label.group(2):
                greedy_index = i
    literal_count = sum(1 for x in literals if x is not None)
    return _Route(
        op=op,
        literals=tuple(literals),
        labels=tuple(labels),
        greedy_index=greedy_index,
        specificity=(literal_count - (greedy_index >= 0), len(op.query_literals)),
        captures=tuple((i, label) for i, label in enumerate(labels) if label is not None),
    )


class ServiceSpec:
    """One AWS service model (``lambda`` rest-json, ``logs`` awsJson1.1) ready for serving."""

    def __init__(self, model: ServiceModel) -> None:
        self.model = model
        self.name: str = model.service_name
        self.protocol: str = model.protocol
        self.api_version: str = model.api_version
        self.target_prefix: str | None = model.metadata.get("targetPrefix")
        self.json_version: str | None = model.metadata.get("jsonVersion")
        self.botocore_version: str = botocore.__version__
        self.operations: dict[str, OperationSpec] = {
            name: _operation(model.operation_model(name)) for name in model.operation_names
        }
        self._errors: dict[str, StructureShape] = {
            shape.error_code: shape for shape in model.error_shapes
        }
        self.router = Router(self.operations.values())
        self._paths: dict[tuple[str, str | bytes], tuple[OperationSpec, dict[str, str]] | None]
        self._paths = {}

    @classmethod
    def load(cls, service: str = "lambda", loader: Loader | None = None) -> ServiceSpec:
        data = (loader or Loader()).load_service_model(service, "service-2")
        return cls(ServiceModel(data, service_name=service))

    def operation(self, name: str) -> OperationSpec:
        return self.operations[name]

    def match(
        self, method: str, raw_path: str | bytes, query: Mapping[str, list[str]]
    ) -> tuple[OperationSpec, dict[str, str]] | None:
        """The operation a request names and its URI labels (a fresh dict per call).

        Requests without a query string are remembered by method and path: warm clients
        send the same few paths over and over (one per function they invoke)."""
        if query:
            return self.router.match(method, raw_path, query)
        key = (method, raw_path)
        if key in self._paths:
            found = self._paths[key]
        else:
            found = self.router.match(method, raw_path, query)
            if len(self._paths) >= _PATHS_MAX:
                self._paths.clear()
            self._paths[key] = found
        return None if found is None else (found[0], dict(found[1]))

    def error_shape(self, code: str) -> StructureShape | None:
        return self._errors.get(code)

    def message_member(self, code: str) -> str:
        """The body key the model uses for an error's message (``message`` or ``Message``)."""
        shape = self._errors.get(code)
        if shape is not None and "Message" in shape.members and "message" not in shape.members:
            return "Message"
        return "message"


def _operation(model: OperationModel) -> OperationSpec:
    http: dict[str, Any] = model.http
    request_uri: str = http.get("requestUri", "/")
    path, _, query = request_uri.partition("?")
    literals: list[tuple[str, str | None]] = []
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        literals.append((key, value if sep else None))
    inputs = _bindings(model.input_shape, lower_headers=True)
    outputs = _bindings(model.output_shape, lower_headers=False)
    return OperationSpec(
        name=model.name,
        method=http.get("method", "POST"),
        request_uri=request_uri,
        path_template=path,
        query_literals=tuple(literals),
        success_status=int(http.get("responseCode", 200)),
        model=model,
        input_shape=model.input_shape,
        output_shape=model.output_shape,
        error_shapes=tuple(model.error_shapes),
        uri_members=inputs["uri"],
        query_members=inputs["querystring"],
        header_members=inputs["header"] + inputs["headers"],
        body_members=inputs["body"],
        input_payload=inputs["payload"][0] if inputs["payload"] else None,
        output_headers=outputs["header"] + outputs["headers"],
        output_status=outputs["statusCode"][0] if outputs["statusCode"] else None,
        output_body=outputs["body"],
        output_payload=outputs["payload"][0] if outputs["payload"] else None,
    )


def _bindings(
    shape: StructureShape | None, lower_headers: bool
) -> dict[str, tuple[MemberBinding, ...]]:
    groups: dict[str, list[MemberBinding]] = {
        k: [] for k in ("uri", "querystring", "header", "headers", "statusCode", "body", "payload")
    }
    if shape is not None:
        payload = shape.serialization.get("payload")
        for name, member in shape.members.items():
            location = member.serialization.get("location") or "body"
            if name == payload:
                location = "payload"
            wire = member.serialization.get("name", name)
            if location in ("header", "headers") and lower_headers:
                wire = wire.lower()
            groups[location].append(MemberBinding(name, wire, location, member))
    return {k: tuple(v) for k, v in groups.items()}
