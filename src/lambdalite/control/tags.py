"""TagResource, UntagResource, ListTags on functions (addressed by unqualified ARN)."""

from __future__ import annotations

from typing import Any

from lambdalite.control.deps import Deps
from lambdalite.control.limits import MAX_TAGS
from lambdalite.core.arn import parse_function
from lambdalite.core.errors import InvalidParameterValueException


class TagService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.catalog = deps.catalog

    def _function(self, resource: str) -> Any:
        ref = parse_function(resource)
        self.deps.arns.check_ref(ref)
        if ref.qualifier is not None:
            raise InvalidParameterValueException(
                "Tags are not supported on function versions or aliases; use the unqualified "
                "function ARN."
            )
        return self.catalog.function(ref.name)

    async def tag_resource(self, params: dict[str, Any]) -> dict[str, Any]:
        doc = self._function(params["Resource"])
        tags = dict(doc.data.get("tags") or {})
        tags.update(params["Tags"])
        if len(tags) > MAX_TAGS:
            raise InvalidParameterValueException(
                f"Number of tags exceeds resource tag limit of {MAX_TAGS}."
            )
        self.catalog.update_function(doc, dict(doc.data, tags=tags))
        return {}

    async def untag_resource(self, params: dict[str, Any]) -> dict[str, Any]:
        doc = self._function(params["Resource"])
        tags = {k: v for k, v in (doc.data.get("tags") or {}).items() if k not in params["TagKeys"]}
        self.catalog.update_function(doc, dict(doc.data, tags=tags))
        return {}

    async def list_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        doc = self._function(params["Resource"])
        return {"Tags": dict(doc.data.get("tags") or {})}
