"""The Extensions API (2020-01-01) of one execution environment.

Extensions share the environment's Runtime API listener (``AWS_LAMBDA_RUNTIME_API``) under the
``/2020-01-01/extension/`` prefix. External extensions are the executables of
``/opt/extensions``, started beside the runtime (see ``invocation.entrypoint``); any other name
that registers is an internal extension, living in the runtime's own process, as on Lambda.

The phases follow the platform:

* INIT ends when every launched extension has registered, every registered extension has
  called ``/event/next`` and the runtime has called ``/runtime/invocation/next``. Until then
  the environment's ``RuntimeApi.ready`` stays pending. An extension that reports
  ``/init/error`` or ``/exit/error``, or exits before it is ready, fails INIT with an
  ``Extension.*`` error type.
* An invocation ends when the runtime has answered and every extension subscribed to
  ``INVOKE`` has asked for its next event again; the environment waits on the future
  ``invoke`` returns, so the function's duration (and its timeout) covers that time.
* SHUTDOWN gives extensions subscribed to it up to two seconds, ended early once each has
  asked for another event or exited, before the environment is killed.

Extension exits are reported by the launcher as marker lines on the shared output pipe;
``output_filter`` takes them out of the function's log.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from lambdalite.invocation.extension_model import (
    Extension,
    error_message,
    event_response,
    identify,
    status_line,
)
from lambdalite.invocation.http11 import Request, Response
from lambdalite.invocation.runtime_events import InitFailure, Outcome, api_error

if TYPE_CHECKING:
    from lambdalite.invocation.runtime_api import RuntimeApi
    from lambdalite.invocation.runtime_events import Event

EXTENSIONS_PREFIX = "/2020-01-01/extension/"
# Ours, not Lambda's: the launcher's long poll, answered once every launched extension has
# registered (or INIT failed), so that the runtime starts after extension registration.
REGISTERED_PATH = EXTENSIONS_PREFIX + "lambdalite/registered"
MAX_EXTENSIONS = 10
SHUTDOWN_GRACE_S = 2.0
EVENT_TYPES = ("INVOKE", "SHUTDOWN")
_ACCEPTED = b'{"status":"OK"}'

Emit = Callable[[str], None]


class ExtensionsApi:
    """The Extensions API and lifecycle bookkeeping of one environment.

    ``launched`` names the external extensions the launcher starts (file names in
    ``/opt/extensions``); ``emit`` writes platform lines to the function's log.
    """

    def __init__(
        self,
        api: RuntimeApi,
        launched: tuple[str, ...],
        *,
        function_name: str,
        version: str,
        handler: str,
        account_id: str,
        log_format: str,
        emit: Emit,
    ) -> None:
        self._api = api
        self.launched = launched
        self._info = {"functionName": function_name, "functionVersion": version}
        self._info["handler"] = handler
        self._account_id = account_id
        self._json = log_format.upper() == "JSON"
        self._emit = emit
        self._by_id: dict[str, Extension] = {}
        self._by_name: dict[str, Extension] = {}
        self._runtime_waiting = False
        self._init_done = False
        self._pending: Callable[[], None] | None = None  # completes the current invocation
        self._changed: asyncio.Event = asyncio.Event()
        self._registered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.exits: dict[str, int] = {}

    # -- lifecycle, driven by the Runtime API and the environment ----------------------------
    def runtime_ready(self) -> None:
        """The runtime called ``/next`` for the first time."""
        self._runtime_waiting = True
        self._check_init()

    def invoke(self, event: Event) -> asyncio.Future[Outcome]:
        """Send INVOKE to subscribed extensions; the result resolves with the runtime's
        outcome once the runtime has answered and each of them has asked for more."""
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        payload = json.dumps(
            {
                "eventType": "INVOKE",
                "deadlineMs": event.deadline_ms,
                "requestId": event.request_id,
                "invokedFunctionArn": event.invoked_arn,
                "tracing": {"type": "X-Amzn-Trace-Id", "value": event.trace_id},
            }
        ).encode()
        targets = [e for e in self._by_id.values() if "INVOKE" in e.events and not e.gone]
        for extension in targets:
            extension.push(payload)

        def check() -> None:
            if done.done() or not event.outcome.done():
                return
            if all(e.ready or e.gone for e in targets):
                self._pending = None
                done.set_result(event.outcome.result())

        self._pending = check
        event.outcome.add_done_callback(lambda _: check())
        return done

    async def shutdown(self, reason: str = "spindown") -> None:
        """Send SHUTDOWN and wait (at most ``SHUTDOWN_GRACE_S``) for subscribed extensions
        to finish, by asking for another event or exiting.

        ``spindown`` (the environment is retired: idle past its keep-alive, replaced, or the
        server stops) is skipped when the environment is not healthy (killed after a timeout
        or a crash, or INIT failed): its extensions are gone or about to be. ``timeout`` (the
        invocation ran out of time, before the environment is reset) comes before the kill.
        Either way only extensions waiting in ``/event/next`` get it: in a healthy idle
        environment that is every live one, and one that is not waiting is busy with an
        INVOKE past the deadline or already dead.
        """
        self._init_done = True  # registration is closed for good
        if reason == "spindown" and not self._healthy():
            return
        deadline = time.time() + SHUTDOWN_GRACE_S
        document: dict[str, Any] = {"eventType": "SHUTDOWN", "shutdownReason": reason}
        document["deadlineMs"] = int(deadline * 1000)
        payload = json.dumps(document).encode()
        targets = [
            e
            for e in self._by_id.values()
            if "SHUTDOWN" in e.events
            and not e.gone
            and e.waiter is not None
            and not e.waiter.done()
        ]
        for extension in targets:
            extension.push(payload)
        loop = asyncio.get_running_loop()
        end = loop.time() + SHUTDOWN_GRACE_S
        while not all(e.ready or e.gone for e in targets):
            self._changed.clear()
            remaining = end - loop.time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                return

    def _healthy(self) -> bool:
        # An invocation still pending means the runtime or an extension never finished it
        # (the environment was killed for its timeout).
        api = self._api
        return api.ready.done() and not api.init_failed.done() and self._pending is None

    # -- extension exits, reported by the launcher ------------------------------------------
    def exited(self, name: str, status: int) -> None:
        """The launcher saw the extension ``name`` exit with ``status``."""
        self.exits[name] = status
        extension = self._by_name.get(name)
        if extension is not None:
            extension.exited = True
            if extension.waiter is not None and not extension.waiter.done():
                extension.waiter.cancel()
        if not self._init_done:
            if extension is None:
                error_type = "Extension.LaunchError" if status in (126, 127) else "Extension.Crash"
                self._fail_init(
                    name, error_type, f"exited with status {status} before it registered"
                )
            elif extension.failed is None:
                self._fail_init(name, "Extension.Crash", f"exited with status {status} during INIT")
        self._changed.set()
        if self._pending is not None:
            self._pending()

    def output_filter(self, marker: str, emit: Emit) -> Emit:
        """Wrap an output callback so the launcher's exit reports (lines carrying ``marker``)
        are taken out of the log and recorded."""
        loop = asyncio.get_running_loop()

        def on_line(line: str) -> None:
            position = line.find(marker)
            if position < 0:
                emit(line)
                return
            if position > 0:  # the extension's last output had no line break
                emit(line[:position])
            status, _, name = line[position + len(marker) :].strip().partition(" ")
            if not status.isdigit():
                emit(line)
                return
            # Not from inside the output callback: handling it writes platform lines, which
            # first drains the very pipe this line came from.
            loop.call_soon(self.exited, name, int(status))

        return on_line

    # -- HTTP ---------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response | Awaitable[Response]:
        """Serve one request under ``/2020-01-01/extension/``."""
        if request.path == REGISTERED_PATH:
            return self._wait_registered(request)
        route = request.path[len(EXTENSIONS_PREFIX) :]
        wanted = {"register": "POST", "event/next": "GET", "init/error": "POST"}
        wanted["exit/error"] = "POST"
        method = wanted.get(route)
        if method is None:
            return api_error(404, "NotFound", f"No route for {request.method} {request.path}")
        if request.method != method:
            return api_error(405, "MethodNotAllowed", "Method not allowed")
        if route == "register":
            return self._register(request)
        extension, error = identify(self._by_id, request)
        if extension is None:
            assert error is not None
            return error
        if route == "event/next":
            return self._next(extension, request)
        return self._error(extension, request, init=route == "init/error")

    def _register(self, request: Request) -> Response:
        name = request.headers.get("lambda-extension-name", "").strip()
        if not name:
            return api_error(403, "Extension.InvalidExtensionName", "Empty extension name")
        if self._init_done:
            return api_error(
                403, "Extension.RegistrationClosed", "Extension registration is closed"
            )
        try:
            body = json.loads(request.body or b"{}")
            events = body.get("events", []) if isinstance(body, dict) else None
        except (ValueError, UnicodeDecodeError):
            events = None
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            return api_error(403, "InvalidRequestFormat", 'The body must be {"events": [...]}')
        if name in self._by_name:
            return api_error(
                403, "Extension.InvalidExtensionState", f"Extension {name} is already registered"
            )
        if len(self._by_id) >= MAX_EXTENSIONS:
            return api_error(
                403,
                "Extension.TooManyExtensions",
                f"No more than {MAX_EXTENSIONS} extensions can register",
            )
        external = name in self.launched
        for event in events:
            if event not in EVENT_TYPES:
                return api_error(403, "Extension.InvalidEventType", f"{event}: unknown event type")
            if event == "SHUTDOWN" and not external:
                return api_error(
                    403,
                    "Extension.InvalidEventType",
                    f"SHUTDOWN: internal extensions cannot subscribe to SHUTDOWN ({name} is "
                    "not the name of an executable in /opt/extensions)",
                )
        extension = Extension(name, str(uuid.uuid4()), tuple(dict.fromkeys(events)), external)
        self._by_id[extension.identifier] = extension
        self._by_name[name] = extension
        if all(n in self._by_name for n in self.launched):
            self._release_runtime()
        info = dict(self._info)
        features = request.headers.get("lambda-extension-accept-feature", "")
        if "accountId" in [f.strip() for f in features.split(",")]:
            info["accountId"] = self._account_id
        headers = [("Lambda-Extension-Identifier", extension.identifier)]
        return Response(200, json.dumps(info).encode(), "application/json", headers)

    def _next(self, extension: Extension, request: Request) -> Response | Awaitable[Response]:
        if extension.failed is not None:
            return api_error(
                403, "Extension.InvalidExtensionState", f"Extension {extension.name} has failed"
            )
        if extension.waiter is not None and not extension.waiter.done():
            return api_error(
                403, "Extension.InvalidExtensionState", "Another /event/next call is waiting"
            )
        extension.ready = True
        self._changed.set()
        if not self._init_done:
            self._check_init()
        if self._pending is not None:
            self._pending()
        if extension.queued:
            return event_response(extension.queued.pop(0))
        waiter = extension.waiter = asyncio.get_running_loop().create_future()
        return self._wait(extension, waiter, request)

    async def _wait(
        self, extension: Extension, waiter: asyncio.Future[bytes], request: Request
    ) -> Response:
        gone = request.disconnected
        either: list[asyncio.Future[Any]] = [waiter] + ([gone] if gone is not None else [])
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done() or waiter.cancelled():
            waiter.cancel()
            if extension.waiter is waiter:
                extension.waiter = None
            return api_error(500, "InternalServerError", "Connection closed")
        return event_response(waiter.result())

    def _error(self, extension: Extension, request: Request, init: bool) -> Response:
        error_type = request.headers.get("lambda-extension-function-error-type", "").strip()
        if not error_type:
            return api_error(
                403, "Extension.MissingHeader", "Missing Lambda-Extension-Function-Error-Type"
            )
        if init and self._init_done:
            return api_error(403, "Extension.InvalidExtensionState", "INIT is over")
        extension.failed = error_type
        self._changed.set()
        if not self._init_done:
            action = "reported an initialization error" if init else "reported an exit error"
            self._fail_init(extension.name, error_type, action, request.body)
        elif self._pending is not None:
            self._pending()
        return Response(202, _ACCEPTED)

    # -- INIT ---------------------------------------------------------------------------------
    def _check_init(self) -> None:
        if self._init_done or not self._runtime_waiting or self._api.init_failed.done():
            return
        if any(name not in self._by_name for name in self.launched):
            return
        if not all(e.ready for e in self._by_id.values()):
            return
        self._init_done = True
        for extension in self._by_id.values():
            self._log_extension(extension, "Ready")
        if not self._api.ready.done():
            self._api.ready.set_result(None)

    def _release_runtime(self) -> None:
        if not self._registered.done():
            self._registered.set_result(None)

    async def _wait_registered(self, request: Request) -> Response:
        """Answer the launcher once the runtime may start (or the client gave up)."""
        gone = request.disconnected
        either: list[asyncio.Future[Any]] = [self._registered]
        either += [gone] if gone is not None else []
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        return Response(200, _ACCEPTED)

    def _fail_init(self, name: str, error_type: str, what: str, body: bytes = b"") -> None:
        self._release_runtime()
        if self._init_done or self._api.init_failed.done():  # over, or failed already
            self._init_done = True
            return
        self._init_done = True
        extension = self._by_name.get(name)
        if extension is not None:
            self._log_extension(extension, "Failed", error_type)
        message = f"Extension {name} {what}"
        detail = error_message(body)
        if detail:
            message = f"{message}: {detail}"
        self._emit(f"{message}\n{error_type}")
        if not self._api.init_failed.done():
            payload = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
            self._api.init_failed.set_result(InitFailure(error_type, payload))

    def _log_extension(self, extension: Extension, state: str, error_type: str = "") -> None:
        self._emit(status_line(extension, state, error_type, self._json))
