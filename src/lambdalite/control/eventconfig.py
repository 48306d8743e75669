"""Put/Update/Get/List/DeleteFunctionEventInvokeConfig, and the settings an event runs with.

A config belongs to one qualifier: the unqualified function (stored as ``$LATEST``), a
version, or an alias. An event uses the config of exactly the qualifier it was invoked with,
falling back to AWS's defaults (2 retries, 6 hours) when that qualifier has none. Put replaces
the whole config; Update changes only the members it names (a ``DestinationConfig`` given to
Update replaces the previous one). Documents: kind ``event-invoke-config``, key
``name:qualifier``, parent ``name``, so deleting the function deletes them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from lambdalite.control.catalog import Catalog
from lambdalite.control.deps import Deps
from lambdalite.control.destinations import Destinations
from lambdalite.control.paging import paginate
from lambdalite.core.arn import LATEST, VERSION_RE, parse_function
from lambdalite.core.errors import InvalidParameterValueException, ResourceNotFoundException

KIND = "event-invoke-config"
DEFAULT_RETRIES = 2
DEFAULT_MAX_AGE = 21600
MEMBERS = ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")


@dataclass(frozen=True)
class AsyncConfig:
    max_retries: int = DEFAULT_RETRIES
    max_age: int = DEFAULT_MAX_AGE  # seconds
    on_success: str | None = None
    on_failure: str | None = None


def _destination(config: dict[str, Any], side: str) -> str | None:
    return ((config.get("DestinationConfig") or {}).get(side) or {}).get("Destination") or None


class EventInvokeConfigService:
    def __init__(self, deps: Deps, destinations: Destinations) -> None:
        self.deps = deps
        self.catalog: Catalog = deps.catalog
        self.destinations = destinations

    # -- the settings an event runs with --------------------------------------------------
    def effective(self, function: str, qualifier: str | None) -> AsyncConfig:
        doc = self.catalog.child(KIND, function, qualifier or LATEST)
        if doc is None:
            return AsyncConfig()
        data = doc.data
        return AsyncConfig(
            max_retries=int(data.get("MaximumRetryAttempts", DEFAULT_RETRIES)),
            max_age=int(data.get("MaximumEventAgeInSeconds", DEFAULT_MAX_AGE)),
            on_success=_destination(data, "OnSuccess"),
            on_failure=_destination(data, "OnFailure"),
        )

    # -- operations -----------------------------------------------------------------------
    def _target(self, params: dict[str, Any]) -> tuple[str, str]:
        ref = parse_function(params["FunctionName"], params.get("Qualifier"))
        self.deps.arns.check_ref(ref)
        q = ref.qualifier or LATEST
        if q == LATEST:
            self.catalog.function(ref.name)
        elif VERSION_RE.match(q):
            self.catalog.version(ref.name, q)
        else:
            self.catalog.alias(ref.name, q)
        return ref.name, q

    def _missing(self, name: str, qualifier: str) -> ResourceNotFoundException:
        arn = self.deps.arns.function(name, qualifier)
        return ResourceNotFoundException(f"The function {arn} doesn't have an EventInvokeConfig")

    def _render(self, name: str, qualifier: str, data: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "LastModified": data["LastModified"],
            "FunctionArn": self.deps.arns.function(name, qualifier),
        }
        for member in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
            if data.get(member) is not None:
                out[member] = data[member]
        out["DestinationConfig"] = {
            side: ({"Destination": arn} if (arn := _destination(data, side)) else {})
            for side in ("OnSuccess", "OnFailure")
        }
        return out

    def _validated(self, name: str, values: dict[str, Any]) -> dict[str, Any]:
        if all(values.get(m) is None for m in MEMBERS):
            raise InvalidParameterValueException(
                "You must specify at least one of error handling or destination setting."
            )
        if values.get("DestinationConfig") is not None:
            self.destinations.check_destination_config(name, values["DestinationConfig"])
        data = {m: values[m] for m in MEMBERS if values.get(m) is not None}
        data["LastModified"] = round(time.time(), 3)
        return data

    async def put_function_event_invoke_config(self, params: dict[str, Any]) -> dict[str, Any]:
        name, qualifier = self._target(params)
        data = self._validated(name, params)
        self.catalog.put_child(KIND, name, qualifier, data)
        return self._render(name, qualifier, data)

    async def update_function_event_invoke_config(self, params: dict[str, Any]) -> dict[str, Any]:
        name, qualifier = self._target(params)
        doc = self.catalog.child(KIND, name, qualifier)
        if doc is None:
            raise self._missing(name, qualifier)
        merged = {m: doc.data.get(m) for m in MEMBERS}
        merged.update({m: params[m] for m in MEMBERS if params.get(m) is not None})
        data = self._validated(name, merged)
        self.catalog.put_child(KIND, name, qualifier, data)
        return self._render(name, qualifier, data)

    async def get_function_event_invoke_config(self, params: dict[str, Any]) -> dict[str, Any]:
        name, qualifier = self._target(params)
        doc = self.catalog.child(KIND, name, qualifier)
        if doc is None:
            raise self._missing(name, qualifier)
        return self._render(name, qualifier, doc.data)

    async def list_function_event_invoke_configs(self, params: dict[str, Any]) -> dict[str, Any]:
        ref = parse_function(params["FunctionName"])
        self.deps.arns.check_ref(ref)
        self.catalog.function(ref.name)
        docs = self.deps.catalog.store.list(KIND, parent=ref.name)
        items = [self._render(ref.name, d.key.split(":", 1)[1], d.data) for d in docs]
        page, marker = paginate(items, params.get("Marker"), params.get("MaxItems"), 50)
        out: dict[str, Any] = {"FunctionEventInvokeConfigs": page}
        if marker:
            out["NextMarker"] = marker
        return out

    async def delete_function_event_invoke_config(self, params: dict[str, Any]) -> dict[str, Any]:
        name, qualifier = self._target(params)
        if not self.catalog.delete_child(KIND, name, qualifier):
            raise self._missing(name, qualifier)
        return {}

    def forget_qualifier(self, name: str, qualifier: str) -> None:
        """A version or alias was deleted: its config goes with it."""
        self.catalog.delete_child(KIND, name, qualifier)
