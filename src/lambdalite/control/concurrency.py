"""Reserved concurrency, provisioned concurrency and account settings.

The rules themselves live in ``ConcurrencyLimiter``; this service validates changes against
them, keeps them in the function documents (``reserved``, and ``provisioned``: qualifier →
``{"requested", "modified"}``) and loads them back at start-up. ``Provisioning`` turns the
provisioned configurations into pre-initialized environments and reports their status.
"""

from __future__ import annotations

from typing import Any

from lambdalite.control.deps import Deps
from lambdalite.control.limiter import CONCURRENT, RESERVED, ConcurrencyLimiter
from lambdalite.control.paging import paginate
from lambdalite.control.provisioning import Provisioning
from lambdalite.core.arn import LATEST, VERSION_RE, parse_function
from lambdalite.core.clock import iso_timestamp
from lambdalite.core.errors import (
    InvalidParameterValueException,
    ProvisionedConcurrencyConfigNotFoundException,
)
from lambdalite.store.base import Document

__all__ = ["CONCURRENT", "RESERVED", "ConcurrencyLimiter", "ConcurrencyService"]


class ConcurrencyService:
    def __init__(self, deps: Deps, limiter: ConcurrencyLimiter) -> None:
        self.deps = deps
        self.catalog = deps.catalog
        self.limiter = limiter
        # Set by the control plane: starts and reports the provisioned environments.
        self.provisioning: Provisioning | None = None

    def load(self) -> None:
        """Rebuild the limiter's reservations and provisioned capacity from the store."""
        for doc in self.catalog.functions():
            if doc.data.get("reserved") is not None:
                self.limiter.reservations[doc.key] = int(doc.data["reserved"])
            provisioned = doc.data.get("provisioned") or {}
            if provisioned:
                self.limiter.provisioned[doc.key] = {
                    q: int(c["requested"]) for q, c in provisioned.items()
                }

    def _function(self, identifier: str) -> Document:
        ref = parse_function(identifier)
        self.deps.arns.check_ref(ref)
        if ref.qualifier is not None:
            raise InvalidParameterValueException(
                "Reserved concurrency is set on the function, not on a version or alias."
            )
        return self.catalog.function(ref.name)

    def _unreserved(
        self, reservations: dict[str, int], provisioned: dict[str, dict[str, int]]
    ) -> int:
        carved = sum(sum(p.values()) for f, p in provisioned.items() if f not in reservations)
        return self.limiter.account_limit - sum(reservations.values()) - carved

    # -- reserved concurrency -------------------------------------------------------------
    async def put_function_concurrency(self, params: dict[str, Any]) -> dict[str, Any]:
        doc = self._function(params["FunctionName"])
        wanted = int(params["ReservedConcurrentExecutions"])
        provisioned = self.limiter.provisioned_total(doc.key)
        if wanted < provisioned:
            raise InvalidParameterValueException(
                f"ReservedConcurrentExecutions {wanted} should be greater than or equal to the "
                f"sum of provisioned concurrency of the function's versions and aliases "
                f"[{provisioned}]."
            )
        reservations = dict(self.limiter.reservations, **{doc.key: wanted})
        minimum = self.deps.settings.unreserved_concurrency_min
        if self._unreserved(reservations, self.limiter.provisioned) < minimum:
            raise InvalidParameterValueException(
                "Specified ReservedConcurrentExecutions for function decreases account's "
                f"UnreservedConcurrentExecution below its minimum value of [{minimum}]."
            )
        self.catalog.update_function(doc, dict(doc.data, reserved=wanted))
        self.limiter.reservations[doc.key] = wanted
        return {"ReservedConcurrentExecutions": wanted}

    async def get_function_concurrency(self, params: dict[str, Any]) -> dict[str, Any]:
        doc = self._function(params["FunctionName"])
        reserved = doc.data.get("reserved")
        return {} if reserved is None else {"ReservedConcurrentExecutions": reserved}

    async def delete_function_concurrency(self, params: dict[str, Any]) -> dict[str, Any]:
        doc = self._function(params["FunctionName"])
        reservations = {k: v for k, v in self.limiter.reservations.items() if k != doc.key}
        minimum = self.deps.settings.unreserved_concurrency_min
        if (
            self.limiter.provisioned_total(doc.key)
            and self._unreserved(reservations, self.limiter.provisioned) < minimum
        ):
            raise InvalidParameterValueException(
                "Removing the reservation would leave the function's provisioned concurrency "
                f"decreasing account's UnreservedConcurrentExecution below its minimum value "
                f"of [{minimum}]."
            )
        self.catalog.update_function(doc, dict(doc.data, reserved=None))
        self.limiter.reservations.pop(doc.key, None)
        return {}

    def forget(self, function: str) -> None:
        self.limiter.forget(function)
        if self.provisioning is not None:
            self.provisioning.drop(function)

    # -- provisioned concurrency ----------------------------------------------------------
    def _qualified(self, params: dict[str, Any]) -> tuple[Document, str]:
        ref = parse_function(params["FunctionName"], params.get("Qualifier"))
        self.deps.arns.check_ref(ref)
        doc = self.catalog.function(ref.name)
        q = ref.qualifier
        if q is None or q == LATEST:
            raise InvalidParameterValueException(
                "Provisioned Concurrency Configs cannot be applied to unpublished function "
                "versions."
            )
        if VERSION_RE.match(q):
            self.catalog.version(ref.name, q)
        else:
            self.catalog.alias(ref.name, q)
        return doc, q

    def _render_provisioned(self, name: str, qualifier: str, config: dict[str, Any]) -> Any:
        requested = int(config["requested"])
        if self.provisioning is None:
            allocated, status, reason = requested, "READY", None
        else:
            live = self.provisioning.status(name, qualifier, requested)
            allocated, status, reason = min(live.allocated, requested), live.status, live.reason
        out = {
            "FunctionArn": self.deps.arns.function(name, qualifier),
            "RequestedProvisionedConcurrentExecutions": requested,
            "AvailableProvisionedConcurrentExecutions": allocated,
            "AllocatedProvisionedConcurrentExecutions": allocated,
            "Status": status,
            "LastModified": config["modified"],
        }
        if reason:
            out["StatusReason"] = reason
        return out

    async def put_provisioned_concurrency_config(self, params: dict[str, Any]) -> dict[str, Any]:
        doc, qualifier = self._qualified(params)
        wanted = int(params["ProvisionedConcurrentExecutions"])
        current = dict(self.limiter.provisioned.get(doc.key, {}))
        current[qualifier] = wanted
        total = sum(current.values())
        reserved = self.limiter.reservations.get(doc.key)
        if reserved is not None and total > reserved:
            raise InvalidParameterValueException(
                "Requested Provisioned Concurrency should not be greater than the "
                f"reservedConcurrentExecution for function [{reserved}]."
            )
        minimum = self.deps.settings.unreserved_concurrency_min
        provisioned = dict(self.limiter.provisioned, **{doc.key: current})
        if reserved is None and self._unreserved(self.limiter.reservations, provisioned) < minimum:
            raise InvalidParameterValueException(
                "Specified ProvisionedConcurrentExecutions for function decreases account's "
                f"UnreservedConcurrentExecution below its minimum value of [{minimum}]."
            )
        config = {"requested": wanted, "modified": iso_timestamp()}
        stored = dict(doc.data.get("provisioned") or {}, **{qualifier: config})
        self.catalog.update_function(doc, dict(doc.data, provisioned=stored))
        self.limiter.provisioned[doc.key] = current
        if self.provisioning is not None:
            self.provisioning.apply(doc.key, qualifier, retry=True)
        out = self._render_provisioned(doc.key, qualifier, config)
        del out["FunctionArn"]
        return dict(out)

    async def get_provisioned_concurrency_config(self, params: dict[str, Any]) -> dict[str, Any]:
        doc, qualifier = self._qualified(params)
        config = (doc.data.get("provisioned") or {}).get(qualifier)
        if config is None:
            raise ProvisionedConcurrencyConfigNotFoundException(
                "No Provisioned Concurrency Config found for this function"
            )
        out = self._render_provisioned(doc.key, qualifier, config)
        del out["FunctionArn"]
        return dict(out)

    async def list_provisioned_concurrency_configs(self, params: dict[str, Any]) -> dict[str, Any]:
        ref = parse_function(params["FunctionName"])
        self.deps.arns.check_ref(ref)
        doc = self.catalog.function(ref.name)
        stored = doc.data.get("provisioned") or {}
        items = [self._render_provisioned(doc.key, q, stored[q]) for q in sorted(stored)]
        page, marker = paginate(items, params.get("Marker"), params.get("MaxItems"), 50)
        out: dict[str, Any] = {"ProvisionedConcurrencyConfigs": page}
        if marker:
            out["NextMarker"] = marker
        return out

    async def delete_provisioned_concurrency_config(self, params: dict[str, Any]) -> dict[str, Any]:
        doc, qualifier = self._qualified(params)
        self.drop_provisioned(doc.key, qualifier)
        return {}

    def drop_provisioned(self, name: str, qualifier: str) -> None:
        """Remove one provisioned config (also when its alias or version is deleted)."""
        doc = self.catalog.find_function(name)
        if doc is None:
            return
        stored = dict(doc.data.get("provisioned") or {})
        if stored.pop(qualifier, None) is not None:
            self.catalog.update_function(doc, dict(doc.data, provisioned=stored))
        current = self.limiter.provisioned.get(name, {})
        current.pop(qualifier, None)
        if not current:
            self.limiter.provisioned.pop(name, None)
        if self.provisioning is not None:
            self.provisioning.drop(name, qualifier)

    # -- account ----------------------------------------------------------------------------
    async def get_account_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        functions = self.catalog.functions()
        total = 0
        for doc in functions:
            total += doc.data["code"]["size"]
            total += sum(v.data["code"]["size"] for v in self.catalog.versions(doc.key))
        return {
            "AccountLimit": {
                "TotalCodeSize": 80530636800,
                "CodeSizeUnzipped": 262144000,
                "CodeSizeZipped": 52428800,
                "ConcurrentExecutions": self.limiter.account_limit,
                "UnreservedConcurrentExecutions": self.limiter.unreserved_limit,
            },
            "AccountUsage": {"TotalCodeSize": total, "FunctionCount": len(functions)},
        }
