"""The control plane's view of stored functions, versions and aliases.

All reads on the invoke path go through here, so it keeps a small in-process cache of
documents, dropped per function on every write made through the catalog. Documents are the
store's generic ``Document``; this module knows their layout:

* ``function`` (key = name): ``config`` (the ``$LATEST`` configuration members we keep),
  ``code`` (``sha``/``size``/``sha256``), ``tags``, ``policies`` (qualifier → statements),
  ``reserved`` (reserved concurrency or None), ``next_version``, ``published``
  (fingerprint of the last published ``$LATEST``).
* ``version`` (key = ``name:N``, parent = name): ``config`` and ``code`` frozen at publish time.
* ``alias`` (key = ``name:alias``, parent = name): ``FunctionVersion``, ``Description``,
  ``RoutingConfig``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from lambdalite.core.arn import LATEST, ArnFormatter
from lambdalite.core.errors import (
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdalite.store.base import Document, DocumentExists, Expect, RevisionMismatch, Store

FUNCTION, VERSION, ALIAS = "function", "version", "alias"

STALE_REVISION = (
    "The Revision Id provided does not match the latest Revision Id. Call the "
    "GetFunction/GetAlias API to retrieve the latest Revision Id"
)


@dataclass(frozen=True)
class Resolved:
    """A qualifier resolved to the version that runs."""

    function: Document
    version: str  # "$LATEST" or "N"
    config: dict[str, Any]
    code: dict[str, Any]
    revision: str  # RevisionId of this version


class Catalog:
    def __init__(self, store: Store, arns: ArnFormatter) -> None:
        self.store = store
        self.arns = arns
        self._functions: dict[str, Document | None] = {}
        self._children: dict[tuple[str, str, str], Document | None] = {}

    # -- reads --------------------------------------------------------------------------
    def function(self, name: str) -> Document:
        doc = self.find_function(name)
        if doc is None:
            raise ResourceNotFoundException(f"Function not found: {self.arns.function(name)}")
        return doc

    def find_function(self, name: str) -> Document | None:
        if name not in self._functions:
            self._functions[name] = self.store.get(FUNCTION, name)
        return self._functions[name]

    def child(self, kind: str, name: str, child: str) -> Document | None:
        key = (kind, name, child)
        if key not in self._children:
            self._children[key] = self.store.get(kind, f"{name}:{child}")
        return self._children[key]

    def version(self, name: str, version: str) -> Resolved:
        function = self.function(name)
        if version == LATEST:
            return Resolved(
                function, LATEST, function.data["config"], function.data["code"], function.revision
            )
        doc = self.child(VERSION, name, version)
        if doc is None:
            raise ResourceNotFoundException(
                f"Function not found: {self.arns.function(name, version)}"
            )
        return Resolved(function, version, doc.data["config"], doc.data["code"], doc.revision)

    def alias(self, name: str, alias: str) -> Document:
        self.function(name)
        doc = self.child(ALIAS, name, alias)
        if doc is None:
            raise ResourceNotFoundException(f"Alias not found: {self.arns.function(name, alias)}")
        return doc

    def versions(self, name: str) -> list[Document]:
        docs = self.store.list(VERSION, parent=name)
        return sorted(docs, key=lambda d: int(d.key.rsplit(":", 1)[1]))

    def aliases(self, name: str) -> list[Document]:
        return self.store.list(ALIAS, parent=name)

    def functions(self) -> list[Document]:
        return self.store.list(FUNCTION)

    # -- writes -------------------------------------------------------------------------
    def create_function(self, name: str, data: dict[str, Any]) -> Document:
        try:
            doc = self.store.put(FUNCTION, name, data, expect=Expect.ABSENT)
        except DocumentExists:
            raise ResourceConflictException(f"Function already exist: {name}") from None
        self.forget(name)
        return doc

    def update_function(
        self, doc: Document, data: dict[str, Any], expected: str | None = None
    ) -> Document:
        """Write ``data`` over ``doc``; ``expected`` is the caller's RevisionId, if any."""
        if expected is not None and expected != doc.revision:
            raise PreconditionFailedException(STALE_REVISION)
        try:
            new = self.store.put(FUNCTION, doc.key, data, expect=doc.revision)
        except RevisionMismatch:
            self.forget(doc.key)
            raise ResourceConflictException(
                "The operation cannot be performed at this time. An update is in progress for "
                f"resource: {self.arns.function(doc.key)}"
            ) from None
        self.forget(doc.key)
        return new

    def put_child(
        self,
        kind: str,
        name: str,
        child: str,
        data: dict[str, Any],
        expect: Expect | str = Expect.ANY,
    ) -> Document:
        try:
            doc = self.store.put(kind, f"{name}:{child}", data, parent=name, expect=expect)
        except RevisionMismatch:
            raise PreconditionFailedException(STALE_REVISION) from None
        finally:
            self.forget(name)
        return doc

    def delete_child(self, kind: str, name: str, child: str) -> bool:
        try:
            return self.store.delete(kind, f"{name}:{child}")
        finally:
            self.forget(name)

    def delete_function(self, name: str) -> None:
        self.store.delete_children(name)
        self.store.delete(FUNCTION, name)
        self.forget(name)

    def forget(self, name: str) -> None:
        self._functions.pop(name, None)
        for key in [k for k in self._children if k[1] == name]:
            del self._children[key]


def fingerprint(config: dict[str, Any], code: dict[str, Any]) -> str:
    """Identity of what a version runs: code plus every configuration member that matters."""
    relevant = {k: v for k, v in config.items() if k not in ("LastModified", "Version")}
    blob = json.dumps([relevant, code.get("sha")], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]
