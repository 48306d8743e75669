"""The control plane's ``Lifecycle``: cleaning up after deletions, checking DLQ targets."""

from __future__ import annotations

import logging
from typing import Any

from lambdalite.control.asyncevent import queue_name
from lambdalite.control.concurrency import ConcurrencyService
from lambdalite.control.delivery import AsyncDelivery
from lambdalite.control.destinations import Destinations
from lambdalite.control.eventconfig import EventInvokeConfigService

log = logging.getLogger(__name__)


class PlaneLifecycle:
    def __init__(
        self,
        destinations: Destinations,
        concurrency: ConcurrencyService,
        configs: EventInvokeConfigService,
        delivery: AsyncDelivery,
    ) -> None:
        self.destinations = destinations
        self.concurrency = concurrency
        self.configs = configs
        self.delivery = delivery

    def check_config(self, config: dict[str, Any]) -> None:
        if "DeadLetterConfig" in config:
            self.destinations.check_dead_letter_config(config["DeadLetterConfig"])

    async def function_deleted(self, name: str) -> None:
        """Events still queued for a deleted function are discarded, as on Lambda."""
        self.concurrency.forget(name)
        writer = self.delivery.writer
        dropped = await writer.call(writer.store.purge, queue_name(name))
        if dropped:
            log.info("discarded %d queued events of deleted function %s", dropped, name)

    async def qualifier_deleted(self, name: str, qualifier: str) -> None:
        self.concurrency.drop_provisioned(name, qualifier)
        self.configs.forget_qualifier(name, qualifier)
