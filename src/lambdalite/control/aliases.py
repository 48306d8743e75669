"""Aliases: named pointers to a version, optionally splitting traffic with a second one."""

from __future__ import annotations

import random
from typing import Any

from lambdalite.control.catalog import ALIAS, STALE_REVISION
from lambdalite.control.deps import Deps
from lambdalite.control.hooks import Lifecycle
from lambdalite.control.paging import paginate
from lambdalite.core.arn import LATEST, VERSION_RE, parse_function
from lambdalite.core.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdalite.store.base import Document, DocumentExists, Expect


def pick_version(alias: dict[str, Any], rng: random.Random) -> str:
    """The version one invocation of the alias runs: weighted per invocation, as on AWS."""
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    draw = rng.random()
    for version, weight in weights.items():
        if draw < weight:
            return str(version)
        draw -= weight
    return str(alias["FunctionVersion"])


class AliasService:
    def __init__(self, deps: Deps, lifecycle: Lifecycle | None = None) -> None:
        self.deps = deps
        self.catalog = deps.catalog
        self.lifecycle = lifecycle

    def _name(self, identifier: str) -> str:
        ref = parse_function(identifier)
        self.deps.arns.check_ref(ref)
        self.catalog.function(ref.name)
        return ref.name

    def _render(self, name: str, doc: Document) -> dict[str, Any]:
        alias = doc.key.split(":", 1)[1]
        out: dict[str, Any] = {
            "AliasArn": self.deps.arns.function(name, alias),
            "Name": alias,
            "FunctionVersion": doc.data["FunctionVersion"],
            "Description": doc.data.get("Description", ""),
            "RevisionId": doc.revision,
        }
        if doc.data.get("RoutingConfig"):
            out["RoutingConfig"] = doc.data["RoutingConfig"]
        return out

    def _check_target(self, name: str, version: str, routing: dict[str, Any] | None) -> None:
        if version != LATEST:
            self.catalog.version(name, version)
        weights = (routing or {}).get("AdditionalVersionWeights") or {}
        if not weights:
            return
        if len(weights) > 1:
            raise InvalidParameterValueException(
                "Number of items in AdditionalVersionWeights cannot be greater than 1"
            )
        if version == LATEST or LATEST in weights:
            raise InvalidParameterValueException(
                "$LATEST is not supported for an alias pointing to more than 1 version"
            )
        for extra, weight in weights.items():
            if not VERSION_RE.match(extra):
                raise InvalidParameterValueException(f"Invalid function version {extra}.")
            if extra == version:
                raise InvalidParameterValueException(
                    f"Alias already points to version {extra}; routing to the same version is "
                    "not supported"
                )
            if not 0.0 <= weight <= 1.0:
                raise InvalidParameterValueException(
                    "Weight of a version in AdditionalVersionWeights must be between 0.0 and 1.0"
                )
            self.catalog.version(name, extra)

    async def create_alias(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._name(params["FunctionName"])
        alias = params["Name"]
        routing = params.get("RoutingConfig")
        self._check_target(name, params["FunctionVersion"], routing)
        data = {
            "FunctionVersion": params["FunctionVersion"],
            "Description": params.get("Description", ""),
            "RoutingConfig": _clean(routing),
        }
        try:
            doc = self.catalog.put_child(ALIAS, name, alias, data, expect=Expect.ABSENT)
        except DocumentExists:
            raise ResourceConflictException(
                f"Alias already exists: {self.deps.arns.function(name, alias)}"
            ) from None
        return self._render(name, doc)

    async def get_alias(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._name(params["FunctionName"])
        return self._render(name, self.catalog.alias(name, params["Name"]))

    async def list_aliases(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._name(params["FunctionName"])
        wanted = params.get("FunctionVersion")
        items = [
            self._render(name, doc)
            for doc in self.catalog.aliases(name)
            if wanted is None or doc.data["FunctionVersion"] == wanted
        ]
        page, marker = paginate(items, params.get("Marker"), params.get("MaxItems"), 50)
        out: dict[str, Any] = {"Aliases": page}
        if marker:
            out["NextMarker"] = marker
        return out

    async def update_alias(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._name(params["FunctionName"])
        doc = self.catalog.alias(name, params["Name"])
        if params.get("RevisionId") and params["RevisionId"] != doc.revision:
            raise PreconditionFailedException(STALE_REVISION)
        data = dict(doc.data)
        if "FunctionVersion" in params:
            data["FunctionVersion"] = params["FunctionVersion"]
        if "Description" in params:
            data["Description"] = params["Description"]
        if "RoutingConfig" in params:
            data["RoutingConfig"] = _clean(params["RoutingConfig"])
        self._check_target(name, data["FunctionVersion"], data.get("RoutingConfig"))
        new = self.catalog.put_child(ALIAS, name, params["Name"], data, expect=doc.revision)
        return self._render(name, new)

    async def delete_alias(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._name(params["FunctionName"])
        if not self.catalog.delete_child(ALIAS, name, params["Name"]):
            raise ResourceNotFoundException(
                f"Alias not found: {self.deps.arns.function(name, params['Name'])}"
            )
        if self.lifecycle is not None:
            await self.lifecycle.qualifier_deleted(name, params["Name"])
        return {}


def _clean(routing: dict[str, Any] | None) -> dict[str, Any] | None:
    """An empty weight map resets routing, as updating with ``{}`` does on AWS."""
    weights = (routing or {}).get("AdditionalVersionWeights")
    if not weights:
        return None
    return {"AdditionalVersionWeights": {str(k): float(v) for k, v in weights.items()}}
