"""Invoke: resolve the qualifier to a version, check the payload, follow the recursion
lineage, then either run the event under a concurrency lease (``RequestResponse``) or store it
durably for the asynchronous delivery (``Event``), answering 202 once it is committed."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from lambdalite.control.aliases import pick_version
from lambdalite.control.asyncevent import AsyncEvent
from lambdalite.control.catalog import Resolved, fingerprint
from lambdalite.control.deps import Deps
from lambdalite.control.hotreload import HotReload, hot_environment, is_hot_reload
from lambdalite.control.images import ImageFunctions, is_image_code
from lambdalite.control.layers import LayerService
from lambdalite.control.limiter import ConcurrencyLimiter
from lambdalite.control.limits import MAX_ASYNC_PAYLOAD, MAX_SYNC_PAYLOAD
from lambdalite.control.recursion import (
    MAX_DEPTH,
    Lineage,
    RecursionService,
    lineage_of,
    too_deep,
)
from lambdalite.core.arn import LATEST, VERSION_RE, FunctionRef, parse_function
from lambdalite.core.errors import (
    InvalidRequestContentException,
    RecursiveInvocationException,
    RequestEntityTooLargeException,
    ServiceException,
)
from lambdalite.invocation.model import (
    FunctionSpec,
    ImageLaunch,
    InvokeRequest,
    InvokeResult,
    ResponseSink,
)

if TYPE_CHECKING:
    from lambdalite.control.snapstart import SnapStartService

log = logging.getLogger(__name__)

MAX_CLIENT_CONTEXT = 3583
RECURSION_MESSAGE = (
    "Lambda has detected your function being invoked in a recursive loop with other AWS "
    "resources and stopped your function's invocation."
)


_IDENTIFIED_MAX = 4096


@dataclass(frozen=True, slots=True)
class _Identified:
    """What an Invoke's FunctionName and Qualifier say, before any lookup."""

    ref: FunctionRef
    invoked_arn: str
    root_lineage: Lineage  # the lineage of a call that carries none


class EventSink(Protocol):
    async def submit(self, event: AsyncEvent, payload: bytes) -> None:
        """Store an accepted asynchronous event durably; return once committed."""


def new_trace_id() -> str:
    rand = os.urandom(20).hex()  # the root's 96 bits and the parent's 64
    return f"Root=1-{int(time.time()):08x}-{rand[:24]};Parent={rand[24:]};Sampled=0"


class InvokeService:
    def __init__(
        self, deps: Deps, limiter: ConcurrencyLimiter, recursion: RecursionService
    ) -> None:
        self.deps = deps
        self.catalog = deps.catalog
        self.limiter = limiter
        self.recursion = recursion
        self.rng = random.Random()
        # Set by the composition root: builds the merged /opt tree of a function's layers.
        self.layers: LayerService | None = None
        # Set by the composition root: live code directories (hot reload).
        self.hot_reload: HotReload | None = None
        # Set by the composition root: container images (PackageType Image).
        self.images: ImageFunctions | None = None
        # Set by the composition root: SnapStart versions (snapshot readiness, restores).
        self.snapstart: SnapStartService | None = None
        # (function, version) -> (RevisionId it was built for, spec)
        self._specs: dict[tuple[str, str], tuple[str, FunctionSpec]] = {}
        # Where Event invocations go; set by the control plane once delivery exists.
        self.events: EventSink | None = None
        self._identified: dict[tuple[str, str | None], _Identified] = {}

    # -- resolution -----------------------------------------------------------------------
    def resolve(self, identifier: str, qualifier: str | None) -> tuple[Resolved, str]:
        """The version that runs and the ARN the caller invoked."""
        return self._resolve_ref(parse_function(identifier, qualifier))

    def _identify(self, identifier: str, qualifier: str | None) -> _Identified:
        """Parse and check a function identifier once per distinct (identifier, qualifier):
        every step is a pure function of the two, and warm invocations repeat them."""
        key = (identifier, qualifier)
        known = self._identified.get(key)
        if known is None:
            ref = parse_function(identifier, qualifier)
            arns = self.deps.arns
            arns.check_ref(ref)
            function_arn = arns.function(ref.name)
            known = _Identified(
                ref, arns.function(ref.name, ref.qualifier), lineage_of(None, function_arn)
            )
            if len(self._identified) >= _IDENTIFIED_MAX:
                self._identified.clear()
            self._identified[key] = known
        return known

    def _resolve_ref(self, ref: FunctionRef, invoked: str | None = None) -> tuple[Resolved, str]:
        if invoked is None:
            self.deps.arns.check_ref(ref)
            invoked = self.deps.arns.function(ref.name, ref.qualifier)
        q = ref.qualifier
        if q is None or q == LATEST:
            return self.catalog.version(ref.name, LATEST), invoked
        if VERSION_RE.match(q):
            return self.catalog.version(ref.name, q), invoked
        alias = self.catalog.alias(ref.name, q)
        return self.catalog.version(ref.name, pick_version(alias.data, self.rng)), invoked

    def _opt_dir(self, config: dict[str, Any]) -> Path | None:
        shas = [info["sha"] for info in config.get("LayerInfo") or []]
        if not shas or self.layers is None:
            return None
        return self.layers.merged_tree(shas)

    def _code_dir(self, name: str, version: str, code: dict[str, Any]) -> Path:
        if self.hot_reload is not None and is_hot_reload(code):
            return self.hot_reload.directory(name, version, code)
        return self.deps.code.unpacked(code["sha"])

    def _image(
        self, config: dict[str, Any], code: dict[str, Any]
    ) -> tuple[ImageLaunch | None, str]:
        """How a container image function starts (None for packages), and its handler."""
        if self.images is None or not is_image_code(code):
            return None, ""
        return self.images.launch(config, code)

    def spec(self, resolved: Resolved) -> FunctionSpec:
        """The FunctionSpec of a resolved version, built once per stored revision.

        The cache is keyed by the document's RevisionId, which changes on every write, so the
        config fingerprint (a JSON dump and a hash) is only computed when something changed,
        not on every invocation; a newer revision replaces the older entry.
        """
        name = resolved.function.key
        key = (name, resolved.version)
        cached = self._specs.get(key)
        if cached is not None and cached[0] == resolved.revision:
            return cached[1]
        config, code = resolved.config, resolved.code
        revision = fingerprint(config, code)
        if cached is None or cached[1].revision != revision:
            settings = self.deps.settings
            logging_config = config.get("LoggingConfig") or {}
            image, image_handler = self._image(config, code)
            spec = FunctionSpec(
                function_name=name,
                version=resolved.version,
                function_arn=self.deps.arns.function(name),
                runtime=config.get("Runtime", ""),  # none for container images
                handler=config.get("Handler", image_handler),
                code_dir=image.rootfs if image else self._code_dir(name, resolved.version, code),
                memory_mb=int(config.get("MemorySize", 128)),
                timeout_s=int(config.get("Timeout", 3)),
                ephemeral_mb=int((config.get("EphemeralStorage") or {}).get("Size", 512)),
                environment={
                    **((config.get("Environment") or {}).get("Variables") or {}),
                    **hot_environment(code),
                },
                revision=revision,
                region=settings.region,
                account_id=settings.account_id,
                log_format=logging_config.get("LogFormat", "Text"),
                log_level=logging_config.get("ApplicationLogLevel"),
                architectures=tuple(config.get("Architectures") or ("x86_64",)),
                opt_dir=self._opt_dir(config),
                image=image,
            )
        else:
            spec = cached[1]  # e.g. only tags or policies changed: same environments
        self._specs[key] = (resolved.revision, spec)
        return spec

    # -- the operation --------------------------------------------------------------------
    async def invoke(
        self,
        params: dict[str, Any],
        request_id: str,
        trace: str | None,
        sink: ResponseSink | None = None,
    ) -> dict[str, Any]:
        """Invoke (``sink``, when given, receives a streamed response as it arrives)."""
        kind = params.get("InvocationType") or "RequestResponse"
        known = self._identify(params["FunctionName"], params.get("Qualifier"))
        ref = known.ref
        resolved, invoked_arn = self._resolve_ref(ref, known.invoked_arn)
        payload = params.get("Payload") or b""
        limit = MAX_ASYNC_PAYLOAD if kind == "Event" else MAX_SYNC_PAYLOAD
        if len(payload) > limit:
            raise RequestEntityTooLargeException(
                f"Request must be smaller than {limit} bytes for the InvokeFunction operation"
            )
        payload = _check_json(payload)
        context = _client_context(params.get("ClientContext"))
        if kind == "DryRun":
            return {"StatusCode": 204}
        name = resolved.function.key
        qualifier = ref.qualifier
        if trace:
            lineage = lineage_of(trace, self.deps.arns.function(name))
            trace_id = lineage.trace(trace)
        else:  # a fresh trace id carries no lineage of its own: this one goes after it
            lineage = known.root_lineage
            trace_id = f"{new_trace_id()};Lineage={lineage.chain}:{lineage.depth}"
        if kind == "Event":
            if self.events is None:
                raise ServiceException("Asynchronous invocation is not available.")
            event = AsyncEvent(
                request_id=request_id,
                function=name,
                qualifier=qualifier,
                invoked_arn=invoked_arn,
                trace_id=trace_id,
                chain=lineage.chain,
                depth=lineage.depth,
            )
            await self.events.submit(event, payload)
            return {"StatusCode": 202}
        if lineage.depth > MAX_DEPTH and too_deep(lineage, self.recursion.recursion(name)):
            raise RecursiveInvocationException(RECURSION_MESSAGE, Type="User")
        request = InvokeRequest(
            request_id=request_id,
            payload=payload,
            invoked_arn=invoked_arn,
            client_context=context,
            trace_id=trace_id,
            tail_logs=params.get("LogType") == "Tail",
            sink=sink,
        )
        result = await self.run(resolved, request, qualifier)
        out: dict[str, Any] = {
            "StatusCode": 200,
            "Payload": result.payload,
            "ExecutedVersion": resolved.version,
        }
        if result.function_error:
            out["FunctionError"] = result.function_error
        if result.log_tail is not None:
            out["LogResult"] = result.log_tail
        return out

    async def run(
        self, resolved: Resolved, request: InvokeRequest, qualifier: str | None = None
    ) -> InvokeResult:
        """Run one event under a concurrency lease; raises the 429 of the limit it hits.

        ``qualifier`` is the version or alias invoked (provisioned concurrency is per
        qualifier); an invocation that finds no warm environment needs a scaling token.
        """
        if self.snapstart is not None:
            await self.snapstart.before_invoke(resolved)
        spec = self.spec(resolved)
        if self.hot_reload is not None and is_hot_reload(resolved.code):
            await self.hot_reload.catch_up()  # edits retire warm environments first
        fresh = not self.deps.invoker.has_idle(spec)
        held = self.limiter.acquire(spec.function_name, qualifier, new_environment=fresh)
        try:
            result = await self.deps.invoker.invoke(spec, request)
        finally:
            self.limiter.release(held)
        if self.snapstart is not None:
            self.snapstart.after_invoke(result)
        return result


# The C scanner ``json.loads`` ends up in, with the same (default) settings.
_SCAN: Callable[[str, int], tuple[Any, int]] = cast(Any, json.JSONDecoder()).scan_once
# Below this many brackets no nesting is deep enough to reach the recursion limit.
_SHALLOW = 200


def _check_json(payload: bytes) -> bytes:
    if not payload.strip():
        return b"{}"
    if payload[0] not in b" \t\n\r" and payload.count(b"[") + payload.count(b"{") < _SHALLOW:
        # The common case without the detours of ``json.loads`` (encoding detection, the
        # whitespace skips): one value that spans the whole payload is what it accepts; any
        # doubt (another encoding, a BOM, extra data) is settled by ``json.loads`` below.
        try:
            text = payload.decode()
            if _SCAN(text, 0)[1] == len(text):
                return payload
        except (StopIteration, ValueError):
            pass
    try:
        json.loads(payload)
    except ValueError as exc:
        raise InvalidRequestContentException(
            f"Could not parse request body into json: Could not parse payload into json: {exc}"
        ) from None
    return payload


def _client_context(value: str | None) -> str | None:
    if not value:
        return None
    if len(value) > MAX_CLIENT_CONTEXT:
        raise InvalidRequestContentException(
            f"Client context must be smaller than {MAX_CLIENT_CONTEXT} bytes."
        )
    try:
        text = base64.b64decode(value, validate=True).decode()
        if not isinstance(json.loads(text), dict):
            raise ValueError("not an object")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequestContentException(
            "Client context must be a valid Base64-encoded JSON object."
        ) from None
    return text
