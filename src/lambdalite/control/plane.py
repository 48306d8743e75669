"""The control plane: one object holding every use-case service, built from ``Deps``."""

from __future__ import annotations

from lambdalite.control.aliases import AliasService
from lambdalite.control.concurrency import ConcurrencyLimiter, ConcurrencyService
from lambdalite.control.deps import Deps
from lambdalite.control.functions import FunctionService
from lambdalite.control.invoke import InvokeService
from lambdalite.control.logs import LogsService
from lambdalite.control.permissions import PermissionService
from lambdalite.control.streaming import StreamingService
from lambdalite.control.tags import TagService
from lambdalite.control.urls import UrlService
from lambdalite.control.versions import VersionService
from lambdalite.store.base import Store


class ControlPlane:
    def __init__(self, deps: Deps, store: Store) -> None:
        self.deps = deps
        self.limiter = ConcurrencyLimiter(deps.settings.account_concurrency)
        self.versions = VersionService(deps)
        self.functions = FunctionService(deps, self.versions, self.limiter)
        self.aliases = AliasService(deps)
        self.permissions = PermissionService(deps)
        self.tags = TagService(deps)
        self.concurrency = ConcurrencyService(deps, self.limiter)
        self.invocations = InvokeService(deps, self.limiter)
        self.streaming = StreamingService(self.invocations)
        self.urls = UrlService(deps)
        self.logs = LogsService(store, deps.settings.region, deps.settings.account_id)
        self.concurrency.load()

    async def close(self) -> None:
        await self.invocations.close()
