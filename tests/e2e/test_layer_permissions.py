"""Layer version permissions through unmodified boto3: statements, principals, organization
conditions, policy RevisionIds and AWS's errors."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.e2e.harness import zip_files

ACCOUNT = "000000000000"


def _layer(lam: Any) -> tuple[str, int, str]:
    name = f"layer-{uuid.uuid4().hex[:10]}"
    out = lam.publish_layer_version(LayerName=name, Content={"ZipFile": zip_files({"a.txt": "a"})})
    return name, out["Version"], out["LayerVersionArn"]


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = exc.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def test_principals_and_policy_document(lam: Any) -> None:
    name, version, arn = _layer(lam)
    first = lam.add_layer_version_permission(
        LayerName=name,
        VersionNumber=version,
        StatementId="one-account",
        Action="lambda:GetLayerVersion",
        Principal="123456789012",
    )
    assert first["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert json.loads(first["Statement"]) == {
        "Sid": "one-account",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "lambda:GetLayerVersion",
        "Resource": arn,
    }
    everyone = lam.add_layer_version_permission(
        LayerName=name,
        VersionNumber=version,
        StatementId="everyone",
        Action="lambda:GetLayerVersion",
        Principal="*",
    )
    assert json.loads(everyone["Statement"])["Principal"] == "*"
    org = lam.add_layer_version_permission(
        LayerName=name,
        VersionNumber=version,
        StatementId="my-org",
        Action="lambda:GetLayerVersion",
        Principal="*",
        OrganizationId="o-abcdefghij",
    )
    assert json.loads(org["Statement"])["Condition"] == {
        "StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}
    }
    by_arn = lam.add_layer_version_permission(
        LayerName=name,
        VersionNumber=version,
        StatementId="root-arn",
        Action="lambda:GetLayerVersion",
        Principal="arn:aws:iam::210987654321:root",
    )
    assert json.loads(by_arn["Statement"])["Principal"] == {"AWS": "arn:aws:iam::210987654321:root"}
    revisions = {first["RevisionId"], everyone["RevisionId"], org["RevisionId"]}
    assert len(revisions | {by_arn["RevisionId"]}) == 4  # a new revision per change

    policy = lam.get_layer_version_policy(LayerName=name, VersionNumber=version)
    assert policy["RevisionId"] == by_arn["RevisionId"]
    document = json.loads(policy["Policy"])
    assert document["Version"] == "2012-10-17"
    assert document["Id"] == "default"
    assert [s["Sid"] for s in document["Statement"]] == [
        "one-account",
        "everyone",
        "my-org",
        "root-arn",
    ]
    assert all(s["Resource"] == arn for s in document["Statement"])

    # The layer's ARN works as LayerName too, and other versions have policies of their own.
    layer_arn = arn.rsplit(":", 1)[0]
    again = lam.get_layer_version_policy(LayerName=layer_arn, VersionNumber=version)
    assert again["Policy"] == policy["Policy"]
    second = lam.publish_layer_version(
        LayerName=name, Content={"ZipFile": zip_files({"b.txt": "b"})}
    )
    with pytest.raises(ClientError) as exc:
        lam.get_layer_version_policy(LayerName=name, VersionNumber=second["Version"])
    assert _error(exc) == (
        "ResourceNotFoundException",
        "No policy is associated with the given resource.",
        404,
    )


def test_duplicate_and_missing_statements(lam: Any) -> None:
    name, version, _arn = _layer(lam)
    add = {
        "LayerName": name,
        "VersionNumber": version,
        "StatementId": "dup",
        "Action": "lambda:GetLayerVersion",
        "Principal": "*",
    }
    lam.add_layer_version_permission(**add)
    with pytest.raises(ClientError) as exc:
        lam.add_layer_version_permission(**dict(add, Principal="111122223333"))
    assert _error(exc) == (
        "ResourceConflictException",
        "The statement id (dup) provided already exists. Please provide a new statement id, "
        "or remove the existing statement.",
        409,
    )
    with pytest.raises(ClientError) as exc:
        lam.remove_layer_version_permission(
            LayerName=name, VersionNumber=version, StatementId="nope"
        )
    assert _error(exc) == (
        "ResourceNotFoundException",
        "Statement nope is not found in resource policy.",
        404,
    )
    removed = lam.remove_layer_version_permission(
        LayerName=name, VersionNumber=version, StatementId="dup"
    )
    assert removed["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        lam.get_layer_version_policy(LayerName=name, VersionNumber=version)
    assert _error(exc)[0] == "ResourceNotFoundException"
    # The statement id is free again once removed.
    lam.add_layer_version_permission(**add)


def test_revision_ids_guard_changes(lam: Any) -> None:
    name, version, _arn = _layer(lam)
    base = {"LayerName": name, "VersionNumber": version, "Action": "lambda:GetLayerVersion"}
    first = lam.add_layer_version_permission(StatementId="a", Principal="*", **base)
    second = lam.add_layer_version_permission(
        StatementId="b", Principal="123456789012", RevisionId=first["RevisionId"], **base
    )
    stale = "The Revision Id provided does not match the latest Revision Id. Call the "
    stale += "GetLayerPolicy API to retrieve the latest Revision Id"
    with pytest.raises(ClientError) as exc:
        lam.add_layer_version_permission(
            StatementId="c", Principal="*", RevisionId=first["RevisionId"], **base
        )
    assert _error(exc) == ("PreconditionFailedException", stale, 412)
    with pytest.raises(ClientError) as exc:
        lam.remove_layer_version_permission(
            LayerName=name, VersionNumber=version, StatementId="a", RevisionId="not-it"
        )
    assert _error(exc) == ("PreconditionFailedException", stale, 412)
    lam.remove_layer_version_permission(
        LayerName=name, VersionNumber=version, StatementId="a", RevisionId=second["RevisionId"]
    )
    policy = json.loads(
        lam.get_layer_version_policy(LayerName=name, VersionNumber=version)["Policy"]
    )
    assert [s["Sid"] for s in policy["Statement"]] == ["b"]


def test_missing_versions_and_invalid_input(lam: Any) -> None:
    name, version, arn = _layer(lam)
    missing = f"{arn.rsplit(':', 1)[0]}:{version + 5}"
    calls = [
        lambda: lam.add_layer_version_permission(
            LayerName=name,
            VersionNumber=version + 5,
            StatementId="s",
            Action="lambda:GetLayerVersion",
            Principal="*",
        ),
        lambda: lam.get_layer_version_policy(LayerName=name, VersionNumber=version + 5),
        lambda: lam.remove_layer_version_permission(
            LayerName=name, VersionNumber=version + 5, StatementId="s"
        ),
    ]
    for call in calls:
        with pytest.raises(ClientError) as exc:
            call()
        assert _error(exc) == (
            "ResourceNotFoundException",
            f"Layer version {missing} does not exist.",
            404,
        )
    with pytest.raises(ClientError) as exc:
        lam.add_layer_version_permission(
            LayerName=name,
            VersionNumber=version,
            StatementId="s",
            Action="lambda:InvokeFunction",
            Principal="*",
        )
    code, message, status = _error(exc)
    assert (code, status) == ("ValidationException", 400)
    assert "'lambda:InvokeFunction' at 'action'" in message
    with pytest.raises(ClientError) as exc:
        lam.add_layer_version_permission(
            LayerName=name,
            VersionNumber=version,
            StatementId="s",
            Action="lambda:GetLayerVersion",
            Principal="lambda.amazonaws.com",
        )
    assert _error(exc)[0] == "ValidationException"
    # Deleting the version takes its policy with it.
    lam.add_layer_version_permission(
        LayerName=name,
        VersionNumber=version,
        StatementId="s",
        Action="lambda:GetLayerVersion",
        Principal="*",
    )
    lam.delete_layer_version(LayerName=name, VersionNumber=version)
    with pytest.raises(ClientError) as exc:
        lam.get_layer_version_policy(LayerName=name, VersionNumber=version)
    assert _error(exc)[1] == f"Layer version {arn} does not exist."
