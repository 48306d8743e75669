"""The HTTP front end of function URLs.

Requests reach a URL either by host name (``<url-id>.lambda-url.<region>.localhost:<port>``;
``*.localhost`` resolves to loopback) or, for clients that cannot choose a host name, by path
(``/lambda-url/<url-id>/...``). Everything else passes through to the AWS API application.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, cast

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from lambdalite.api.asgi import AsgiApp, Receive, Scope, Send, new_request_id
from lambdalite.api.http_events import (
    BAD_GATEWAY,
    HttpRequest,
    HttpResponse,
    apply_cors,
    build_event,
    error_response,
    is_preflight,
    map_result,
    preflight,
)
from lambdalite.api.sigv4 import SignatureError, SigV4Verifier
from lambdalite.api.stream_send import forward
from lambdalite.api.url_stream import stream_response
from lambdalite.control.limits import MAX_SYNC_PAYLOAD
from lambdalite.control.plane import ControlPlane
from lambdalite.control.urls import UrlTarget
from lambdalite.core.errors import (
    LambdaError,
    RequestEntityTooLargeException,
    TooManyRequestsException,
)

log = logging.getLogger(__name__)

_HOST_RE = re.compile(r"^(?P<id>[a-z0-9]{32})\.lambda-url\.")
_PATH_RE = re.compile(r"^/lambda-url/(?P<id>[a-z0-9]{32})(?P<rest>/.*)?$")
PATH_PREFIX = "/lambda-url/"
FORBIDDEN = ("Forbidden", "AccessDeniedException")


class _Denied(Exception):
    """The caller may not invoke this URL."""


def _url_of(scope: Scope) -> tuple[str, str] | None:
    """(URL id, path within the function URL) of a request to a function URL, else None.

    Every API call passes here: the host is found without decoding the other headers, and
    only a host or path that could name a function URL is matched."""
    raw_host = b""
    for key, value in scope["headers"]:
        if key.lower() == b"host":
            raw_host = value
            break
    path: str = scope["path"]
    by_prefix = path.startswith(PATH_PREFIX)
    if b".lambda-url." not in raw_host and not by_prefix:
        return None
    by_host = _HOST_RE.match(raw_host.decode("latin-1"))
    if by_host is not None:
        return by_host["id"], path
    by_path = _PATH_RE.match(path) if by_prefix else None
    if by_path is None:
        return None
    return by_path["id"], by_path["rest"] or "/"


class FunctionUrlGateway:
    def __init__(
        self,
        inner: AsgiApp,
        plane: ControlPlane,
        verifier: SigV4Verifier,
        trusted_proxies: str = "127.0.0.1,::1",
    ) -> None:
        """``trusted_proxies``: the addresses whose X-Forwarded-For is believed, as uvicorn
        takes them (comma-separated addresses or networks, ``*`` for any)."""
        self.inner = inner
        self.plane = plane
        self.verifier = verifier
        self.account = plane.deps.settings.account_id
        # A function URL's caller (its event's sourceIp) as a trusted proxy in front says
        # (X-Forwarded-For), with uvicorn's own rules.
        self._forwarded: Any = ProxyHeadersMiddleware(cast(Any, self._serve), trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _url_of(scope) is None:
            await self.inner(scope, receive, send)
            return
        await self._forwarded(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A request to a function URL (by host name or by path)."""
        found = _url_of(scope)
        assert found is not None
        url_id, path = found
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        host = next((v for k, v in headers if k.lower() == "host"), "")
        body = await _read_body(receive, MAX_SYNC_PAYLOAD)
        request_id = new_request_id()
        if body is None:
            response = error_response(413, "Request must be smaller than 6291456 bytes")
        else:
            client = scope.get("client") or ("127.0.0.1", 0)
            request = HttpRequest(
                method=scope["method"],
                path=path,
                raw_query=scope.get("query_string", b"").decode("latin-1"),
                headers=headers,
                body=body,
                source_ip=client[0],
                domain=host.split(":", 1)[0] or "localhost",
                url_id=url_id,
                request_id=request_id,
            )
            raw_path = scope.get("raw_path") or scope["path"].encode()
            response = await self.handle(request, raw_path.decode("latin-1"))
        response.headers.append(("x-amzn-RequestId", request_id))
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers
                ],
            }
        )
        if response.stream is None:
            await send({"type": "http.response.body", "body": response.body})
            return
        await send({"type": "http.response.body", "body": response.body, "more_body": True})
        await forward(response.stream, send, receive, f"function URL {url_id}")

    async def handle(self, request: HttpRequest, raw_path: str) -> HttpResponse:
        target = self.plane.urls.target(request.url_id)
        if target is None:
            return error_response(403, *FORBIDDEN)
        origin = request.header("origin")
        if target.cors and is_preflight(request.method, request.headers):
            return preflight(target.cors, origin)
        try:
            authorizer = self._authorize(target, request, raw_path)
        except _Denied:
            return error_response(403, *FORBIDDEN)
        response = await self._invoke(target, request, authorizer)
        if target.cors:
            apply_cors(response, target.cors, origin)
        return response

    def _authorize(
        self, target: UrlTarget, request: HttpRequest, raw_path: str
    ) -> dict[str, Any] | None:
        """The requestContext.authorizer value; raises ``_Denied`` when the call is not allowed."""
        statements = self.plane.permissions.statements(target.function, target.qualifier or "")
        if target.auth_type == "NONE":
            if not _allows_public(statements):
                raise _Denied
            return None
        lowered = {k.lower(): v for k, v in request.headers}
        try:
            caller = self.verifier.verify(
                request.method, raw_path, request.raw_query, lowered, request.body
            )
        except SignatureError as exc:
            log.info("function URL %s: rejected signature: %s", request.url_id, exc)
            raise _Denied from None
        if caller.account_id != self.account and not _allows_account(statements, caller.account_id):
            raise _Denied
        return {
            "iam": {
                "accessKey": caller.access_key,
                "accountId": caller.account_id,
                "callerId": caller.access_key,
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": f"arn:aws:iam::{caller.account_id}:user/{caller.access_key}",
                "userId": caller.access_key,
            }
        }

    async def _invoke(
        self, target: UrlTarget, request: HttpRequest, authorizer: dict[str, Any] | None
    ) -> HttpResponse:
        account = "anonymous" if authorizer is None else authorizer["iam"]["accountId"]
        event = build_event(request, authorizer, account)
        params: dict[str, Any] = {
            "FunctionName": target.function,
            "Payload": json.dumps(event).encode(),
            "InvocationType": "RequestResponse",
        }
        if target.qualifier:
            params["Qualifier"] = target.qualifier
        trace = request.header("x-amzn-trace-id")
        try:
            if target.invoke_mode == "RESPONSE_STREAM":
                streaming = self.plane.streaming
                streamed = await streaming.invoke_with_response_stream(
                    params, request.request_id, trace
                )
                return await stream_response(streamed)
            result = await self.plane.invocations.invoke(params, request.request_id, trace)
        except TooManyRequestsException:
            return error_response(429, "Rate Exceeded.", "TooManyRequestsException")
        except RequestEntityTooLargeException:
            return error_response(413, "Request must be smaller than 6291456 bytes")
        except LambdaError as exc:
            log.info("function URL %s: invoke failed: %s", request.url_id, exc.message)
            return BAD_GATEWAY
        if result.get("FunctionError"):
            return BAD_GATEWAY
        return map_result(result["Payload"])


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action")
    return action if isinstance(action, list) else [str(action)]


def _allows_public(statements: list[dict[str, Any]]) -> bool:
    for s in statements:
        principal = s.get("Principal")
        public = principal == "*" or (isinstance(principal, dict) and principal.get("AWS") == "*")
        auth = ((s.get("Condition") or {}).get("StringEquals") or {}).get(
            "lambda:FunctionUrlAuthType"
        )
        if (
            public
            and auth == "NONE"
            and any(a in ("lambda:InvokeFunctionUrl", "lambda:*") for a in _actions(s))
        ):
            return True
    return False


def _allows_account(statements: list[dict[str, Any]], account: str) -> bool:
    wanted = {account, f"arn:aws:iam::{account}:root"}
    for s in statements:
        principal = s.get("Principal")
        who = principal.get("AWS") if isinstance(principal, dict) else principal
        if (who == "*" or who in wanted) and any(
            a in ("lambda:InvokeFunctionUrl", "lambda:*") for a in _actions(s)
        ):
            return True
    return False


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it exceeds ``limit`` (the rest is drained)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks) if size <= limit else None
