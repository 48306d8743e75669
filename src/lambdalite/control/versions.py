"""PublishVersion and ListVersionsByFunction.

A version is an immutable copy of ``$LATEST``'s code and configuration. Publishing an
unchanged ``$LATEST`` returns the newest version instead of creating another, as AWS does;
the version counter lives in the function document and is bumped with a conditional write, so
numbers are never reused, even after a version is deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lambdalite.control.catalog import VERSION, Resolved, fingerprint
from lambdalite.control.configuration import render
from lambdalite.control.deps import Deps
from lambdalite.control.paging import paginate
from lambdalite.core.arn import LATEST, parse_function
from lambdalite.core.clock import iso_timestamp
from lambdalite.core.errors import InvalidParameterValueException, PreconditionFailedException
from lambdalite.store.base import Expect

if TYPE_CHECKING:
    from lambdalite.control.snapstart import SnapStartService


class VersionService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.catalog = deps.catalog
        # Set by the composition root: turns live (hot-reload) code into a package to freeze.
        self.freeze_code: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        # Set by the composition root: SnapStart snapshots of published versions.
        self.snapstart: SnapStartService | None = None

    async def publish_version(self, params: dict[str, Any]) -> dict[str, Any]:
        ref = parse_function(params["FunctionName"])
        self.deps.arns.check_ref(ref)
        return await self.publish(ref.name, params)

    async def publish(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        doc = self.catalog.function(name)
        if params.get("RevisionId") and params["RevisionId"] != doc.revision:
            raise PreconditionFailedException(
                "The Revision Id provided does not match the latest Revision Id. Call the "
                "GetFunction/GetAlias API to retrieve the latest Revision Id"
            )
        config, code = doc.data["config"], doc.data["code"]
        wanted = params.get("CodeSha256")
        if wanted and wanted != code["sha256"]:
            raise InvalidParameterValueException(
                f"CodeSHA256 ({wanted}) is different from current CodeSHA256 in $LATEST "
                f"({code['sha256']}). Please try again with the CodeSHA256 in $LATEST."
            )
        if self.freeze_code is not None:
            code = self.freeze_code(code)
        mark = fingerprint(config, code)
        published = doc.data.get("published")
        if published and published["fingerprint"] == mark and "Description" not in params:
            existing = self.catalog.child(VERSION, name, published["version"])
            if existing is not None:
                return self._render(name, published["version"], existing.data, existing.revision)
        number = str(doc.data["next_version"])
        data = dict(doc.data)
        data["next_version"] = doc.data["next_version"] + 1
        data["published"] = {"fingerprint": mark, "version": number}
        self.catalog.update_function(doc, data)
        frozen = dict(config)
        frozen["LastModified"] = iso_timestamp()
        if "Description" in params:
            frozen["Description"] = params["Description"]
        if self.snapstart is not None:
            self.snapstart.freeze(frozen)
        version_data = {"config": frozen, "code": dict(code)}
        vdoc = self.catalog.put_child(VERSION, name, number, version_data, expect=Expect.ABSENT)
        if self.snapstart is not None:
            self.snapstart.published(name, number)
        return self._render(name, number, version_data, vdoc.revision)

    def _render(
        self, name: str, number: str, data: dict[str, Any], revision: str
    ) -> dict[str, Any]:
        function = self.catalog.function(name)
        resolved = Resolved(function, number, data["config"], data["code"], revision)
        return render(resolved, self.deps.arns, qualified=True)

    async def list_versions_by_function(self, params: dict[str, Any]) -> dict[str, Any]:
        ref = parse_function(params["FunctionName"])
        self.deps.arns.check_ref(ref)
        latest = self.catalog.version(ref.name, LATEST)
        items = [render(latest, self.deps.arns, qualified=True)]
        for vdoc in self.catalog.versions(ref.name):
            number = vdoc.key.rsplit(":", 1)[1]
            items.append(self._render(ref.name, number, vdoc.data, vdoc.revision))
        page, marker = paginate(items, params.get("Marker"), params.get("MaxItems"), 50)
        out: dict[str, Any] = {"Versions": page}
        if marker:
            out["NextMarker"] = marker
        return out
