"""The control plane: one object holding every use-case service, built from ``Deps``."""

from __future__ import annotations

from lambdalite.control.aliases import AliasService
from lambdalite.control.concurrency import ConcurrencyService
from lambdalite.control.delivery import AsyncDelivery
from lambdalite.control.deps import Deps
from lambdalite.control.destinations import Destinations
from lambdalite.control.eventconfig import EventInvokeConfigService
from lambdalite.control.functions import FunctionService
from lambdalite.control.hotreload import HotReload
from lambdalite.control.invoke import InvokeService
from lambdalite.control.layers import LayerService
from lambdalite.control.lifecycle import PlaneLifecycle
from lambdalite.control.limiter import ConcurrencyLimiter
from lambdalite.control.logs import LogsService
from lambdalite.control.permissions import PermissionService
from lambdalite.control.provisioning import Provisioning
from lambdalite.control.recursion import RecursionService
from lambdalite.control.snapstart import SnapStartService
from lambdalite.control.stats import StatsService
from lambdalite.control.streaming import StreamingService
from lambdalite.control.tags import TagService
from lambdalite.control.urls import UrlService
from lambdalite.control.versions import VersionService
from lambdalite.store.base import Store


class ControlPlane:
    def __init__(self, deps: Deps, store: Store) -> None:
        self.deps = deps
        settings = deps.settings
        self.limiter = ConcurrencyLimiter(
            settings.account_concurrency, scaling_rate=settings.scaling_rate
        )
        self.destinations = Destinations(deps.catalog, deps.arns)
        self.versions = VersionService(deps)
        self.permissions = PermissionService(deps)
        self.tags = TagService(deps)
        self.concurrency = ConcurrencyService(deps, self.limiter)
        self.recursion = RecursionService(deps)
        self.invocations = InvokeService(deps, self.limiter, self.recursion)
        self.provisioning = Provisioning(deps.catalog, self.invocations, self.limiter)
        self.concurrency.provisioning = self.provisioning
        self.event_configs = EventInvokeConfigService(deps, self.destinations)
        self.delivery = AsyncDelivery(
            settings,
            store,
            self.invocations,
            self.event_configs,
            self.destinations,
            self.recursion,
            self.limiter,
        )
        self.invocations.events = self.delivery
        lifecycle = PlaneLifecycle(
            self.destinations, self.concurrency, self.event_configs, self.delivery
        )
        self.functions = FunctionService(deps, self.versions, self.limiter, lifecycle)
        self.layers = LayerService(deps)
        self.functions.layers = self.layers
        self.invocations.layers = self.layers
        self.hot_reload = HotReload(settings, deps.invoker, deps.code)
        self.functions.hot_reload = self.invocations.hot_reload = self.hot_reload
        self.versions.freeze_code = self.hot_reload.snapshot
        self.snapstart = SnapStartService(deps, self.invocations)
        self.versions.snapstart = self.invocations.snapstart = self.snapstart
        self.aliases = AliasService(deps, lifecycle)
        self.streaming = StreamingService(self.invocations)
        self.urls = UrlService(deps)
        self.logs = LogsService(store, settings.region, settings.account_id)
        self.stats = StatsService(self.limiter, self.delivery)
        self.stats.provisioning = self.provisioning
        self.concurrency.load()

    def start(self) -> None:
        """Start background work (asynchronous delivery); needs the running event loop."""
        self.delivery.start()
        self.provisioning.start()

    async def close(self) -> None:
        await self.provisioning.close()
        await self.delivery.close()
        await self.hot_reload.close()
        await self.snapstart.close()
