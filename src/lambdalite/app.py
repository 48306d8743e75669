"""The composition root: the only module that names concrete implementations.

``Server`` builds every component from one ``Settings`` object, serves the Lambda API,
CloudWatch Logs reads and code downloads on one port, and shuts down in a fixed order:
stop accepting requests, stop async deliveries, stop execution environments, flush logs,
close the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn

from lambdalite.api.asgi import AsgiApp, AwsAsgiApp, Receive, Scope, Send
from lambdalite.api.figures import (
    ENVIRONMENTS_PATH,
    METRICS_PATH,
    STATS_PATH,
    EnvironmentsEndpoint,
    metrics_endpoint,
    stats_endpoint,
)
from lambdalite.api.function_urls import FunctionUrlGateway
from lambdalite.api.handlers import lambda_handlers, logs_handlers
from lambdalite.api.images import IMAGES_PATH, ImagesEndpoint
from lambdalite.api.serving import CoalescingHttpProtocol
from lambdalite.api.sigv4 import SigV4Verifier, parse_credentials
from lambdalite.api.spec import ServiceSpec
from lambdalite.blobs.store import CodeStore
from lambdalite.config import Settings
from lambdalite.control.catalog import Catalog
from lambdalite.control.deps import Deps
from lambdalite.control.functions import CODE_PATH
from lambdalite.control.images import ImageFunctions
from lambdalite.control.plane import ControlPlane
from lambdalite.core.arn import ArnFormatter
from lambdalite.images import ImageStore
from lambdalite.invocation.manager import EnvironmentManager
from lambdalite.invocation.model import FunctionSpec
from lambdalite.invocation.prestart import start_at_boot
from lambdalite.observability.logsink import StoreLogSink
from lambdalite.runtimes.python import launcher_path
from lambdalite.runtimes.registry import RuntimeRegistry
from lambdalite.sandbox.process import ProcessSandboxBackend
from lambdalite.sandbox.selection import choose_backend
from lambdalite.sandbox.zygotes import ForkableRuntime
from lambdalite.store import open_store
from lambdalite.store.base import Store

log = logging.getLogger(__name__)


@dataclass
class Components:
    store: Store
    code: CodeStore
    sink: StoreLogSink
    backend: ProcessSandboxBackend
    manager: EnvironmentManager
    plane: ControlPlane
    app: AsgiApp


def build(settings: Settings) -> Components:
    """Wire every component; must run inside the event loop that will serve requests."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.database)
    code = CodeStore(settings.data_dir / "packages")
    runtimes = RuntimeRegistry(settings.python_runtimes, node_overrides=settings.node_runtimes)
    sink = StoreLogSink(store)

    def command_for(spec: FunctionSpec) -> list[str]:
        command = runtimes.resolve(spec.runtime)
        if command is None:
            raise RuntimeError(f"no interpreter for {spec.runtime}")
        return list(command.argv)

    backend = choose_backend(settings)
    if settings.zygotes:  # Python cold starts fork a pre-initialized runtime client
        python_client = launcher_path()
        forkable = ForkableRuntime(python_client, python_client.with_name("zygote.py"))
        backend.use_zygotes(forkable, ahead_idle=settings.keep_alive)
        start_at_boot(backend, store, runtimes.resolve, python_client.parent.parent)
    manager = EnvironmentManager(settings, sink, backend, command_for)
    arns = ArnFormatter(settings.region, settings.account_id)
    deps = Deps(settings, Catalog(store, arns), arns, code, runtimes, manager)
    plane = ControlPlane(deps, store)
    plane.provisioning.attach(manager)  # provisioned concurrency starts real environments
    images = ImageStore(settings.data_dir / "images")
    plane.functions.images = plane.invocations.images = ImageFunctions(images)
    api = AwsAsgiApp(
        ServiceSpec.load("lambda"),
        lambda_handlers(plane),
        logs_handlers(plane),
        extra_routes=[
            ("GET", CODE_PATH, CodeDownload(code)),
            ("GET", "/_lambdalite/health", health),
            ("*", IMAGES_PATH, ImagesEndpoint(images)),
            ("GET", STATS_PATH, stats_endpoint(plane.stats)),
            ("GET", METRICS_PATH, metrics_endpoint(plane.stats)),
            ("GET", ENVIRONMENTS_PATH, EnvironmentsEndpoint(manager.environments)),
        ],
    )
    plane.start()
    verifier = SigV4Verifier(
        parse_credentials(settings.credentials, settings.account_id),
        settings.region,
        reject_replays=settings.reject_replayed_signatures,
    )
    # uvicorn's variable for the proxies it believes, as its own middleware would read it.
    trusted = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
    gateway = FunctionUrlGateway(api, plane, verifier, trusted)
    return Components(store, code, sink, backend, manager, plane, gateway)


async def shutdown(parts: Components) -> None:
    await parts.plane.close()
    await parts.manager.close()
    await parts.backend.close()
    await parts.sink.close()
    parts.store.close()


class Server:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def run(self) -> None:
        parts = build(self.settings)
        config = uvicorn.Config(
            parts.app,
            host=self.settings.host,
            port=self.settings.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            http=CoalescingHttpProtocol,
            timeout_keep_alive=75,
            # X-Forwarded-* only matter to function URLs (their sourceIp): the gateway applies
            # them there, and the API's requests skip the middleware.
            proxy_headers=False,
        )
        server = _HttpServer(config)
        log.info(
            "lambdalite serving on http://%s:%d (data in %s, store %s)",
            self.settings.host,
            self.settings.port,
            self.settings.data_dir,
            self.settings.database.split("@")[-1],
        )
        try:
            await server.serve()
        finally:
            await shutdown(parts)
            log.info("lambdalite stopped")


class _HttpServer(uvicorn.Server):
    """uvicorn, minus its habit of re-raising the stop signal once it has shut down.

    The re-raised SIGTERM would kill the process before environments are stopped and logs
    flushed; here a signal only asks the server to stop, and ``Server.run`` finishes the
    shutdown and returns normally.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


class CodeDownload:
    """Serves deployment packages by digest: the target of GetFunction's Code.Location."""

    def __init__(self, code: CodeStore) -> None:
        self.code = code

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path"][len(CODE_PATH) :]
        digest = name.removesuffix(".zip")
        body, status, kind = b"Not Found", 404, "text/plain"
        if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
            path = self.code.zip_path(digest)
            if path.exists():
                body = await asyncio.to_thread(path.read_bytes)
                status, kind = 200, "application/zip"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", kind.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def health(scope: Scope, receive: Receive, send: Send) -> None:
    body = json.dumps({"status": "ok"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
