"""The Lambda Runtime API (2018-06-01) for one execution environment.

Every environment gets its own listener, so a runtime can only ever see the events of its own
environment. The server keeps the runtime-side state machine: INIT lasts until the first
``GET /next``; then each event is handed out by ``/next`` and answered exactly once through
``/response`` or ``/error``. Calls that do not fit the state get the platform's errors
(``InvalidStateTransition``, ``InvalidRequestID``, ``RequestEntityTooLarge``), all as
``{"errorMessage", "errorType"}`` JSON.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from lambdalite.invocation.http11 import HttpServer, PendingResponse, Request, Response
from lambdalite.invocation.runtime_events import (
    Event,
    InitFailure,
    Outcome,
    api_error,
    normalize_error_type,
)
from lambdalite.sandbox.base import PeerSocket

if TYPE_CHECKING:
    from lambdalite.invocation.extensions import ExtensionsApi

API_PREFIX = "/2018-06-01"
MAX_RESPONSE_BYTES = 6291556  # 6 MiB + 100, the buffered response limit
MAX_STREAM_BYTES = 200 * 1024 * 1024  # a streamed response's limit
_OK = b'{"status":"OK"}'
_RUNTIME_PREFIX = API_PREFIX + "/runtime/"
_RUNTIME_PREFIX_LEN = len(_RUNTIME_PREFIX)
_INVOCATION_LEN = len("invocation/")


class RuntimeApi:
    """One environment's Runtime API listener and runtime-side state."""

    def __init__(
        self,
        host: str,
        max_payload: int = MAX_RESPONSE_BYTES,
        accept: Callable[[PeerSocket], bool] | None = None,
        max_stream: int = MAX_STREAM_BYTES,
        snapstart: bool = False,
    ) -> None:
        self.host = host
        # SnapStart environments (templates and restored copies) may use /runtime/restore/*.
        self.snapstart = snapstart
        self.max_payload = max_payload
        self.max_stream = max_stream
        # ``accept`` decides, per connection, whether the peer may talk to this API at all.
        self._server = HttpServer(self._handle, max_payload, accept, self._route_body)
        self.address = ""
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()  # first GET /next
        self.init_failed: asyncio.Future[InitFailure] = loop.create_future()
        self._queued: Event | None = None
        self._current: Event | None = None
        # A parked /next: resolves with the answer to write (an event, or why there is none).
        self._waiter: PendingResponse | None = None
        self._hang_up: Callable[[], None] = _nothing  # stops watching the parked poll's client
        # The Extensions API (2020-01-01) on this listener, when the function has extensions.
        self.extensions: ExtensionsApi | None = None
        # Set while an invocation waits in ``wait_answer``: resolved as the answer is taken.
        self._answered: asyncio.Future[None] | None = None
        # The waiting invocation's deadline (loop time) and its timer, left armed for the next
        # invocation (re-armed if it fires early) rather than scheduled and cancelled each time.
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None

    async def start(self, sock: socket.socket | None = None, address: str = "") -> str:
        """Listen on a free port, or serve the listening ``sock`` made elsewhere (whose
        ``address`` is what its clients connect to); returns ``host:port`` for
        ``AWS_LAMBDA_RUNTIME_API``."""
        port = await self._server.start(self.host, sock=sock)
        self.address = address or f"{self.host}:{port}"
        return self.address

    def submit(self, event: Event) -> asyncio.Future[Outcome]:
        """Queue ``event`` for the runtime's next ``/next`` (handing it over at once when the
        runtime is already waiting); the returned future resolves with its answer."""
        if self._queued is not None:
            raise RuntimeError("an event is already queued")
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            self._current = event
            self._hang_up()
            waiter.set_result(self._deliver(event))
        else:
            self._queued = event
        if self.extensions is not None:  # also waits for the extensions' INVOKE
            return self.extensions.invoke(event)
        return event.outcome

    async def wait_answer(
        self, outcome: asyncio.Future[Outcome], exited: asyncio.Future[Any], timeout: float
    ) -> None:
        """Wait until ``outcome`` (what ``submit`` returned) is resolved, ``exited`` is, or
        ``timeout`` seconds pass, whichever comes first.

        ``asyncio.wait`` would learn of the answer through a callback and only then wake the
        waiting task, one more pass of the event loop per invocation; here the answer wakes
        it directly."""
        if outcome.done() or exited.done():
            return
        event = self._queued or self._current  # the one ``submit`` took
        if self.extensions is not None or event is None or outcome is not event.outcome:
            either: list[asyncio.Future[Any]] = [outcome, exited]
            await asyncio.wait(either, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            return
        loop = asyncio.get_running_loop()
        woken = self._answered = loop.create_future()
        deadline = self._deadline = loop.time() + timeout
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(deadline, self._at_deadline)
        exited.add_done_callback(self._on_exit)
        try:
            await woken
        finally:
            exited.remove_done_callback(self._on_exit)
            if self._answered is woken:
                self._answered = None

    def _at_deadline(self) -> None:
        """The timer fired: the deadline has come, or it was an earlier one's (re-armed)."""
        timer, self._timer = self._timer, None
        woken = self._answered
        if woken is None or woken.done() or timer is None:
            return
        if timer.when() >= self._deadline:
            woken.set_result(None)
        else:
            self._timer = asyncio.get_running_loop().call_at(self._deadline, self._at_deadline)

    def _on_exit(self, _: object) -> None:
        woken = self._answered  # the runtime exited: wake the waiting invocation
        if woken is not None and not woken.done():
            woken.set_result(None)

    async def close(self) -> None:
        """Stop listening and drop every connection (a runtime blocked in /next included)."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            self._hang_up()
            waiter.set_result(api_error(500, "InternalServerError", "Environment is shutting down"))
        await self._server.close()

    # -- routing ------------------------------------------------------------------------------
    def _handle(self, request: Request) -> Response | Awaitable[Response] | PendingResponse:
        path = request.path
        if self.extensions is not None and path.startswith("/2020-01-01/extension/"):
            return self.extensions.handle(request)
        if path.startswith(_RUNTIME_PREFIX):
            rest = path[_RUNTIME_PREFIX_LEN:]
            if rest == "invocation/next":
                if request.method != "GET":
                    return _method_not_allowed()
                return self._next(request)
            if rest.startswith("invocation/"):
                request_id, _, action = rest[_INVOCATION_LEN:].rpartition("/")
                if action in ("response", "error") and request_id and "/" not in request_id:
                    if request.method != "POST":
                        return _method_not_allowed()
                    return self._answer(request, request_id, action)
            if rest == "init/error":
                if request.method != "POST":
                    return _method_not_allowed()
                return self._init_error(request)
            if rest in ("restore/next", "restore/error") and self.snapstart:
                return self._restore(request, rest)
            if rest in ("restore/next", "restore/error"):
                return api_error(
                    403, "InvalidStateTransition", "Restore is only available with SnapStart"
                )
        if path == "/ping" and request.method == "GET":
            return Response(200, b"pong", "text/plain")
        return api_error(404, "NotFound", f"No route for {request.method} {path}")

    def _route_body(self, request: Request) -> Callable[[bytes], None] | None:
        """Streams a streaming-mode response of the current event to its sink as it arrives."""
        if request.method != "POST" or not request.path.endswith("/response"):
            return None
        mode = request.headers.get("lambda-runtime-function-response-mode", "")
        event = self._current
        if mode.lower() != "streaming" or event is None or event.sink is None or event.answered:
            return None
        prefix = f"{API_PREFIX}/runtime/invocation/{event.request_id}/"
        if request.path != prefix + "response" or not self.ready.done():
            return None
        sink, limit = event.sink, self.max_stream
        sink.begin(request.headers.get("content-type") or "application/octet-stream")

        def feed(data: bytes) -> None:
            if event.overflowed or event.answered:
                return
            if event.streamed + len(data) > limit:
                event.overflowed = True
                cut = getattr(sink, "cut", None)  # a sink may end its reader's stream now
                if cut is not None:
                    cut(limit)
                return
            event.streamed += len(data)
            if data:
                sink.write(data)

        return feed

    # -- endpoints ----------------------------------------------------------------------------
    def _next(self, request: Request) -> Response | PendingResponse:
        if self.init_failed.done():
            return api_error(403, "InvalidStateTransition", "Initialization already failed")
        current = self._current
        if current is not None and not current.answered:
            return api_error(
                403,
                "InvalidStateTransition",
                f"Invocation {current.request_id} has not been answered",
            )
        if self._waiter is not None and not self._waiter.done():
            return api_error(403, "InvalidStateTransition", "Another /next call is waiting")
        if not self.ready.done():
            if self.extensions is None:
                self.ready.set_result(None)
            else:  # INIT also waits for the extensions
                self.extensions.runtime_ready()
        event, self._queued = self._queued, None
        if event is not None:
            self._current = event
            return self._deliver(event)
        return self._park(request)

    def _park(self, request: Request) -> PendingResponse:
        """Hold a ``/next`` until an event is submitted (or the runtime hangs up, or the
        environment closes). Not a task: the event is written to the runtime from within
        ``submit``, and a warm invocation costs no coroutine for its long poll."""
        waiter = self._waiter = PendingResponse()
        gone = request.disconnected
        if gone is None:
            return waiter

        def hung_up(_: object = None) -> None:
            # The runtime hung up: forget this poll, any event stays queued.
            if self._waiter is waiter:
                self._waiter = None
                self._hang_up = _nothing
            if not waiter.done():
                waiter.set_result(api_error(500, "InternalServerError", "Connection closed"))

        if gone.done():
            hung_up()
            return waiter
        gone.add_done_callback(hung_up)

        def watched() -> None:
            self._hang_up = _nothing
            gone.remove_done_callback(hung_up)

        self._hang_up = watched
        return waiter

    @staticmethod
    def _deliver(event: Event) -> Response:
        return Response(200, event.payload, "application/json", event.headers())

    def _answer(self, request: Request, request_id: str, action: str) -> Response | PendingResponse:
        if not self.ready.done():
            return api_error(
                403, "InvalidStateTransition", f"Cannot post {action} before the first /next"
            )
        event = self._current
        if event is None or event.request_id != request_id or event.answered:
            return api_error(400, "InvalidRequestID", "Invalid request ID")
        mode = request.headers.get("lambda-runtime-function-response-mode")
        if mode is not None and mode.lower() != "streaming":
            return api_error(
                400, "InvalidFunctionResponseMode", f"Invalid response mode header: {mode}"
            )
        event.answered = True
        if request.too_large or event.overflowed:
            event.outcome.set_result(Outcome("too_large"))
            self._wake()
            limit = self.max_stream if event.overflowed else self.max_payload
            return api_error(
                413,
                "RequestEntityTooLarge",
                f"Exceeded maximum allowed payload size ({limit} bytes).",
            )
        content_type = request.headers.get("content-type") or "application/json"
        trailer_type = request.trailers.get("lambda-runtime-function-error-type")
        if action == "error" or trailer_type:
            header = request.headers.get("lambda-runtime-function-error-type") or trailer_type
            body = request.body if action == "error" else _trailer_body(request)
            outcome = Outcome("error", body, "application/json", normalize_error_type(header, body))
        else:
            outcome = Outcome("response", request.body, content_type)
        event.outcome.set_result(outcome)
        if not self._wake():
            return Response(202, _OK)
        # The invocation just woken runs first on the next pass of the loop and writes its
        # caller's response at once; the runtime's 202 follows it, so the caller does not
        # wait for the runtime to be answered (and scheduled) first.
        accepted = PendingResponse()
        asyncio.get_running_loop().call_soon(accepted.set_result, Response(202, _OK))
        return accepted

    def _wake(self) -> bool:
        """Wake the invocation waiting in ``wait_answer``; False when none was."""
        woken = self._answered
        if woken is None or woken.done():
            return False
        woken.set_result(None)
        return True

    def _restore(self, request: Request, rest: str) -> Response:
        """``restore/next`` ends INIT of a SnapStart template: the snapshot is taken there (its
        answer comes at once; restored copies run on listeners of their own).
        ``restore/error`` fails the restore of a copy, as ``init/error`` fails an INIT."""
        if rest == "restore/next":
            if request.method != "GET":
                return _method_not_allowed()
            if self.init_failed.done():
                return api_error(403, "InvalidStateTransition", "Initialization already failed")
            if not self.ready.done():
                self.ready.set_result(None)
            return Response(200, b"{}")
        if request.method != "POST":
            return _method_not_allowed()
        return self._init_error(request)

    def _init_error(self, request: Request) -> Response:
        if self.ready.done() or self.init_failed.done():
            return api_error(403, "InvalidStateTransition", "Not in the init phase")
        header = request.headers.get("lambda-runtime-function-error-type")
        body = b"" if request.too_large else request.body
        self.init_failed.set_result(InitFailure(normalize_error_type(header, body), body))
        return Response(202, _OK)


def _trailer_body(request: Request) -> bytes:
    raw = request.trailers.get("lambda-runtime-function-error-body", "")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return raw.encode()


def _nothing() -> None:
    pass


def _method_not_allowed() -> Response:
    return api_error(405, "MethodNotAllowed", "Method not allowed")
