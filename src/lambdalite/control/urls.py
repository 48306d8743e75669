"""Function URL configurations: one HTTP endpoint per function (``$LATEST``) or alias.

Each configuration is stored twice: under the function (kind ``url``, key ``name:qualifier``)
for the API, and under its URL id (kind ``url-id``) so an incoming HTTP request finds its
function with one lookup. Ids are 32 random lowercase alphanumerics, as on AWS, and a deleted
URL's id is never handed out again for the same function.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import Any

from lambdalite.control.deps import Deps
from lambdalite.control.paging import paginate
from lambdalite.core.arn import parse_function
from lambdalite.core.clock import iso_timestamp
from lambdalite.core.errors import ResourceConflictException, ResourceNotFoundException
from lambdalite.store.base import DocumentExists, Expect

URL, URL_ID = "url", "url-id"
_ALPHABET = string.ascii_lowercase + string.digits
NOT_FOUND = "The resource you requested does not exist."


@dataclass(frozen=True)
class UrlTarget:
    """What an incoming URL request invokes, and how."""

    url_id: str
    function: str
    qualifier: str | None  # alias name, or None for $LATEST
    auth_type: str
    cors: dict[str, Any] | None
    invoke_mode: str


class UrlService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.catalog = deps.catalog
        # url id → (function, qualifier): ids are never reused, so this never goes stale.
        self._index: dict[str, tuple[str, str | None] | None] = {}

    def url_for(self, url_id: str) -> str:
        settings = self.deps.settings
        return f"http://{url_id}.lambda-url.{settings.region}.localhost:{settings.port}/"

    def _ref(self, params: dict[str, Any]) -> tuple[str, str | None]:
        ref = parse_function(params["FunctionName"], params.get("Qualifier"))
        self.deps.arns.check_ref(ref)
        self.catalog.function(ref.name)
        if ref.qualifier is not None:
            self.catalog.alias(ref.name, ref.qualifier)
        return ref.name, ref.qualifier

    def _render(self, name: str, data: dict[str, Any], *, modified: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "FunctionUrl": self.url_for(data["UrlId"]),
            "FunctionArn": self.deps.arns.function(name, data.get("Qualifier")),
            "AuthType": data["AuthType"],
            "CreationTime": data["CreationTime"],
            "InvokeMode": data.get("InvokeMode", "BUFFERED"),
        }
        if data.get("Cors"):
            out["Cors"] = data["Cors"]
        if modified:
            out["LastModifiedTime"] = data["LastModifiedTime"]
        return out

    async def create_function_url_config(self, params: dict[str, Any]) -> dict[str, Any]:
        name, qualifier = self._ref(params)
        now = iso_timestamp()
        url_id = "".join(secrets.choice(_ALPHABET) for _ in range(32))
        data = {
            "UrlId": url_id,
            "Qualifier": qualifier,
            "AuthType": params["AuthType"],
            "Cors": params.get("Cors"),
            "InvokeMode": params.get("InvokeMode", "BUFFERED"),
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        try:
            self.catalog.put_child(URL, name, qualifier or "", data, expect=Expect.ABSENT)
        except DocumentExists:
            raise ResourceConflictException(
                "Failed to create function url config for [functionArn = "
                f"{self.deps.arns.function(name, qualifier)}]. Error message:  FunctionUrlConfig "
                "exists for this Lambda function"
            ) from None
        index = {"function": name, "qualifier": qualifier}
        self.catalog.store.put(URL_ID, url_id, index, parent=name)
        return self._render(name, data, modified=False)

    def _get(self, name: str, qualifier: str | None) -> tuple[dict[str, Any], str]:
        doc = self.catalog.child(URL, name, qualifier or "")
        if doc is None:
            raise ResourceNotFoundException(NOT_FOUND)
        return doc.data, doc.revision

    async def get_function_url_config(self, params: dict[str, Any]) -> dict[str, Any]:
        name, qualifier = self._ref(params)
        return self._render(name, self._get(name, qualifier)[0])

    async def update_function_url_config(self, params: dict[str, Any]) -> dict[str, Any]:
        name, qualifier = self._ref(params)
        data, revision = self._get(name, qualifier)
        data = dict(data)
        for member in ("AuthType", "Cors", "InvokeMode"):
            if member in params:
                data[member] = params[member]
        data["LastModifiedTime"] = iso_timestamp()
        self.catalog.put_child(URL, name, qualifier or "", data, expect=revision)
        return self._render(name, data)

    async def delete_function_url_config(self, params: dict[str, Any]) -> dict[str, Any]:
        name, qualifier = self._ref(params)
        data, _ = self._get(name, qualifier)
        self.catalog.delete_child(URL, name, qualifier or "")
        self.catalog.store.delete(URL_ID, data["UrlId"])
        return {}

    async def list_function_url_configs(self, params: dict[str, Any]) -> dict[str, Any]:
        ref = parse_function(params["FunctionName"])
        self.deps.arns.check_ref(ref)
        self.catalog.function(ref.name)
        items = [self._render(ref.name, d.data) for d in self.catalog.store.list(URL, ref.name)]
        page, marker = paginate(items, params.get("Marker"), params.get("MaxItems"), 50)
        out: dict[str, Any] = {"FunctionUrlConfigs": page}
        if marker:
            out["NextMarker"] = marker
        return out

    def target(self, url_id: str) -> UrlTarget | None:
        """The live configuration behind a URL id, or None once it was deleted."""
        if url_id not in self._index:
            doc = self.catalog.store.get(URL_ID, url_id)
            self._index[url_id] = (
                None if doc is None else (doc.data["function"], doc.data["qualifier"])
            )
        where = self._index[url_id]
        if where is None:
            return None
        name, qualifier = where
        config = self.catalog.child(URL, name, qualifier or "")
        if config is None or config.data["UrlId"] != url_id:
            return None
        data = config.data
        return UrlTarget(
            url_id,
            name,
            qualifier,
            data["AuthType"],
            data.get("Cors"),
            data.get("InvokeMode", "BUFFERED"),
        )
