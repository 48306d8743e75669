"""Resource-based policies: AddPermission, GetPolicy, RemovePermission.

Statements are stored per qualifier (the function itself under ``""``) in the function
document, so the policy's RevisionId is the function's, as AWS reports it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lambdalite.control.catalog import STALE_REVISION
from lambdalite.control.deps import Deps
from lambdalite.control.limits import MAX_POLICY_BYTES
from lambdalite.core.arn import LATEST, VERSION_RE, parse_function
from lambdalite.core.errors import (
    PolicyLengthExceededException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)

_ACCOUNT_RE = re.compile(r"^\d{12}$")


def principal_of(value: str) -> Any:
    if value == "*":
        return "*"
    if _ACCOUNT_RE.match(value):
        return {"AWS": f"arn:aws:iam::{value}:root"}
    if value.startswith("arn:"):
        return {"AWS": value}
    return {"Service": value}


def build_statement(params: dict[str, Any], resource: str) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": params["StatementId"],
        "Effect": "Allow",
        "Principal": principal_of(params["Principal"]),
        "Action": params["Action"],
        "Resource": resource,
    }
    equals: dict[str, str] = {}
    if params.get("SourceAccount"):
        equals["AWS:SourceAccount"] = params["SourceAccount"]
    if params.get("EventSourceToken"):
        equals["lambda:EventSourceToken"] = params["EventSourceToken"]
    if params.get("PrincipalOrgID"):
        equals["aws:PrincipalOrgID"] = params["PrincipalOrgID"]
    if params.get("FunctionUrlAuthType"):
        equals["lambda:FunctionUrlAuthType"] = params["FunctionUrlAuthType"]
    if params.get("InvokedViaFunctionUrl"):
        equals["lambda:InvokedViaFunctionUrl"] = "true"
    condition: dict[str, Any] = {}
    if equals:
        condition["StringEquals"] = equals
    if params.get("SourceArn"):
        condition["ArnLike"] = {"AWS:SourceArn": params["SourceArn"]}
    if condition:
        statement["Condition"] = condition
    return statement


class PermissionService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.catalog = deps.catalog

    def _target(self, params: dict[str, Any]) -> tuple[str, str]:
        ref = parse_function(params["FunctionName"], params.get("Qualifier"))
        self.deps.arns.check_ref(ref)
        self.catalog.function(ref.name)
        qualifier = ref.qualifier or ""
        if qualifier and qualifier != LATEST:
            if VERSION_RE.match(qualifier):
                self.catalog.version(ref.name, qualifier)
            else:
                self.catalog.alias(ref.name, qualifier)
        return ref.name, qualifier

    async def add_permission(self, params: dict[str, Any]) -> dict[str, Any]:
        name, qualifier = self._target(params)
        doc = self.catalog.function(name)
        if params.get("RevisionId") and params["RevisionId"] != doc.revision:
            raise PreconditionFailedException(STALE_REVISION)
        policies = {k: list(v) for k, v in (doc.data.get("policies") or {}).items()}
        statements = policies.setdefault(qualifier, [])
        if any(s["Sid"] == params["StatementId"] for s in statements):
            raise ResourceConflictException(
                f"The statement id ({params['StatementId']}) provided already exists. Please "
                "provide a new statement id, or remove the existing statement."
            )
        statement = build_statement(params, self.deps.arns.function(name, qualifier or None))
        statements.append(statement)
        if len(_policy_json(statements)) > MAX_POLICY_BYTES:
            raise PolicyLengthExceededException(
                "The final policy size (bigger than 20480) is bigger than the limit."
            )
        data = dict(doc.data, policies=policies)
        self.catalog.update_function(doc, data)
        return {"Statement": json.dumps(statement, separators=(",", ":"))}

    async def get_policy(self, params: dict[str, Any]) -> dict[str, Any]:
        name, qualifier = self._target(params)
        doc = self.catalog.function(name)
        statements = (doc.data.get("policies") or {}).get(qualifier) or []
        if not statements:
            raise ResourceNotFoundException("The resource you requested does not exist.")
        return {"Policy": _policy_json(statements), "RevisionId": doc.revision}

    async def remove_permission(self, params: dict[str, Any]) -> dict[str, Any]:
        name, qualifier = self._target(params)
        doc = self.catalog.function(name)
        if params.get("RevisionId") and params["RevisionId"] != doc.revision:
            raise PreconditionFailedException(STALE_REVISION)
        policies = {k: list(v) for k, v in (doc.data.get("policies") or {}).items()}
        statements = policies.get(qualifier) or []
        kept = [s for s in statements if s["Sid"] != params["StatementId"]]
        if len(kept) == len(statements):
            raise ResourceNotFoundException(
                f"Statement {params['StatementId']} is not found in resource policy."
            )
        policies[qualifier] = kept
        self.catalog.update_function(doc, dict(doc.data, policies=policies))
        return {}

    def statements(self, name: str, qualifier: str = "") -> list[dict[str, Any]]:
        doc = self.catalog.function(name)
        return list((doc.data.get("policies") or {}).get(qualifier) or [])


def _policy_json(statements: list[dict[str, Any]]) -> str:
    policy = {"Version": "2012-10-17", "Id": "default", "Statement": statements}
    return json.dumps(policy, separators=(",", ":"))
