"""Layer version permissions: AddLayerVersionPermission, GetLayerVersionPolicy,
RemoveLayerVersionPermission.

The policy lives inside the layer version's own document (``policy``: ``revision`` and
``statements``), so deleting the version deletes its policy with it and a write to the policy
is one conditional write of that document. The policy has a RevisionId of its own, a fresh
UUID on every change, as AWS gives layer policies (unlike function policies, which share the
function's RevisionId).

lambdalite has one account, so the statements grant nothing here: every function of the
account can already use every layer. They are kept and reported so that tools which manage
layer sharing (CloudFormation, Terraform, the aws CLI) work unchanged.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from lambdalite.control.limits import MAX_POLICY_BYTES
from lambdalite.core.errors import (
    PolicyLengthExceededException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdalite.store.base import RevisionMismatch, Store

LAYER_VERSION = "layerversion"
STALE_POLICY = (
    "The Revision Id provided does not match the latest Revision Id. Call the GetLayerPolicy "
    "API to retrieve the latest Revision Id"
)
_ACCOUNT = re.compile(r"^\d{12}$")


def layer_principal(value: str) -> Any:
    """The policy's form of a principal: ``*`` as is, an account (by id or by its root ARN)
    as its root ARN, the way AWS writes it back."""
    if value == "*":
        return "*"
    if _ACCOUNT.match(value):
        return {"AWS": f"arn:aws:iam::{value}:root"}
    return {"AWS": value}


class LayerPolicies:
    """Reads and writes the policy of layer versions stored as ``layerversion`` documents."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _document(self, name: str, version: int, arn: str) -> Any:
        doc = self.store.get(LAYER_VERSION, f"{name}:{version}")
        if doc is None:
            raise ResourceNotFoundException(f"Layer version {arn} does not exist.")
        return doc

    def add(self, name: str, version: int, arn: str, params: dict[str, Any]) -> dict[str, Any]:
        sid = params["StatementId"]
        while True:
            doc = self._document(name, version, arn)
            policy = dict(doc.data.get("policy") or {})
            statements = list(policy.get("statements") or [])
            if any(s["Sid"] == sid for s in statements):
                raise ResourceConflictException(
                    f"The statement id ({sid}) provided already exists. Please provide a new "
                    "statement id, or remove the existing statement."
                )
            wanted = params.get("RevisionId")
            if wanted and wanted != policy.get("revision"):
                raise PreconditionFailedException(STALE_POLICY)
            statement: dict[str, Any] = {
                "Sid": sid,
                "Effect": "Allow",
                "Principal": layer_principal(params["Principal"]),
                "Action": params["Action"],
                "Resource": arn,
            }
            if params.get("OrganizationId"):
                statement["Condition"] = {
                    "StringEquals": {"aws:PrincipalOrgID": params["OrganizationId"]}
                }
            statements.append(statement)
            if len(_policy_json(statements)) > MAX_POLICY_BYTES:
                raise PolicyLengthExceededException(
                    f"The final policy size (bigger than {MAX_POLICY_BYTES}) is bigger than the "
                    "limit."
                )
            revision = str(uuid.uuid4())
            data = dict(doc.data, policy={"revision": revision, "statements": statements})
            if self._write(doc, data):
                return {
                    "Statement": json.dumps(statement, separators=(",", ":")),
                    "RevisionId": revision,
                }

    def get(self, name: str, version: int, arn: str) -> dict[str, Any]:
        doc = self._document(name, version, arn)
        policy = doc.data.get("policy") or {}
        if not policy.get("statements"):
            raise ResourceNotFoundException("No policy is associated with the given resource.")
        return {"Policy": _policy_json(policy["statements"]), "RevisionId": policy["revision"]}

    def remove(self, name: str, version: int, arn: str, params: dict[str, Any]) -> None:
        sid = params["StatementId"]
        while True:
            doc = self._document(name, version, arn)
            policy = dict(doc.data.get("policy") or {})
            wanted = params.get("RevisionId")
            if wanted and wanted != policy.get("revision"):
                raise PreconditionFailedException(STALE_POLICY)
            statements = list(policy.get("statements") or [])
            kept = [s for s in statements if s["Sid"] != sid]
            if len(kept) == len(statements):
                raise ResourceNotFoundException(f"Statement {sid} is not found in resource policy.")
            data = dict(doc.data, policy={"revision": str(uuid.uuid4()), "statements": kept})
            if self._write(doc, data):
                return

    def _write(self, doc: Any, data: dict[str, Any]) -> bool:
        """Conditional write; False when another writer got there first (read again)."""
        try:
            self.store.put(LAYER_VERSION, doc.key, data, parent=doc.parent, expect=doc.revision)
        except RevisionMismatch:
            return False
        return True


def _policy_json(statements: list[dict[str, Any]]) -> str:
    policy = {"Version": "2012-10-17", "Id": "default", "Statement": statements}
    return json.dumps(policy, separators=(",", ":"))
