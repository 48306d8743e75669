"""Versions, aliases and weighted routing through unmodified boto3."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.e2e.harness import create, zip_files


def code(tag: str) -> bytes:
    return zip_files({"app.py": f"def handler(e, c):\n    return {{'v': '{tag}'}}\n"})


def invoke(lam: Any, name: str, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    response = lam.invoke(FunctionName=name, **kw)
    return json.loads(response["Payload"].read()), response


def test_publish_and_list_versions(lam: Any, name: str) -> None:
    create(lam, name, Code={"ZipFile": code("one")})
    v1 = lam.publish_version(FunctionName=name, Description="first")
    assert v1["Version"] == "1" and v1["FunctionArn"].endswith(f":{name}:1")
    assert v1["Description"] == "first"
    # Nothing changed: publishing again returns the same version.
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    lam.update_function_code(FunctionName=name, ZipFile=code("two"))
    v2 = lam.publish_version(FunctionName=name)
    assert v2["Version"] == "2"
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.publish_version(FunctionName=name, CodeSha256="wrong")
    versions = lam.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]
    assert versions[0]["FunctionArn"].endswith(":$LATEST")
    assert invoke(lam, name, Qualifier="1")[0] == {"v": "one"}
    body, response = invoke(lam, f"{name}:2")
    assert body == {"v": "two"} and response["ExecutedVersion"] == "2"
    assert (
        lam.get_function_configuration(FunctionName=name, Qualifier="1")["CodeSha256"]
        == v1["CodeSha256"]
    )


def test_publish_on_create_and_update(lam: Any, name: str) -> None:
    created = create(lam, name, Publish=True)
    assert created["Version"] == "1"
    updated = lam.update_function_code(FunctionName=name, ZipFile=code("x"), Publish=True)
    assert updated["Version"] == "2"


def test_delete_version(lam: Any, name: str) -> None:
    create(lam, name, Code={"ZipFile": code("one")})
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.delete_function(FunctionName=name, Qualifier="1")
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as exc:
        lam.delete_function(FunctionName=name, Qualifier="$LATEST")
    assert "$LATEST version cannot be deleted" in exc.value.response["Error"]["Message"]
    lam.delete_alias(FunctionName=name, Name="live")
    lam.delete_function(FunctionName=name, Qualifier="1")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name, Qualifier="1")
    # Numbers are never reused.
    lam.update_function_code(FunctionName=name, ZipFile=code("two"))
    assert lam.publish_version(FunctionName=name)["Version"] == "2"


def test_alias_lifecycle(lam: Any, name: str) -> None:
    create(lam, name, Code={"ZipFile": code("one")})
    lam.publish_version(FunctionName=name)
    alias = lam.create_alias(FunctionName=name, Name="prod", FunctionVersion="1", Description="d")
    assert alias["AliasArn"].endswith(f":{name}:prod") and alias["FunctionVersion"] == "1"
    with pytest.raises(lam.exceptions.ResourceConflictException) as exc:
        lam.create_alias(FunctionName=name, Name="prod", FunctionVersion="1")
    assert exc.value.response["Error"]["Message"] == f"Alias already exists: {alias['AliasArn']}"
    assert lam.get_alias(FunctionName=name, Name="prod")["RevisionId"] == alias["RevisionId"]
    body, response = invoke(lam, name, Qualifier="prod")
    assert body == {"v": "one"} and response["ExecutedVersion"] == "1"
    lam.update_function_code(FunctionName=name, ZipFile=code("two"))
    lam.publish_version(FunctionName=name)
    with pytest.raises(lam.exceptions.PreconditionFailedException):
        lam.update_alias(FunctionName=name, Name="prod", FunctionVersion="2", RevisionId="stale")
    updated = lam.update_alias(
        FunctionName=name, Name="prod", FunctionVersion="2", RevisionId=alias["RevisionId"]
    )
    assert updated["FunctionVersion"] == "2" and updated["RevisionId"] != alias["RevisionId"]
    assert invoke(lam, f"{name}:prod")[0] == {"v": "two"}
    lam.create_alias(FunctionName=name, Name="dev", FunctionVersion="$LATEST")
    listed = lam.list_aliases(FunctionName=name)["Aliases"]
    assert sorted(a["Name"] for a in listed) == ["dev", "prod"]
    assert [
        a["Name"] for a in lam.list_aliases(FunctionName=name, FunctionVersion="2")["Aliases"]
    ] == ["prod"]
    lam.delete_alias(FunctionName=name, Name="dev")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_alias(FunctionName=name, Name="dev")
    with pytest.raises(ClientError) as exc2:
        lam.create_alias(FunctionName=name, Name="x", FunctionVersion="9")
    assert exc2.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_weighted_routing_is_statistically_right(lam: Any, name: str) -> None:
    create(lam, name, Code={"ZipFile": code("one")})
    lam.publish_version(FunctionName=name)
    lam.update_function_code(FunctionName=name, ZipFile=code("two"))
    lam.publish_version(FunctionName=name)
    lam.create_alias(
        FunctionName=name,
        Name="canary",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.3}},
    )
    runs = 400
    executed = [
        lam.invoke(FunctionName=name, Qualifier="canary")["ExecutedVersion"] for _ in range(runs)
    ]
    share = executed.count("2") / runs
    # Binomial(400, 0.3): standard deviation ~0.023; five of them keeps flakes below 1e-6.
    assert abs(share - 0.3) < 0.115, share
    assert set(executed) == {"1", "2"}
    with pytest.raises(ClientError) as exc:
        lam.update_alias(
            FunctionName=name, Name="canary", RoutingConfig={"AdditionalVersionWeights": {"2": 2.0}}
        )
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    reset = lam.update_alias(
        FunctionName=name, Name="canary", RoutingConfig={"AdditionalVersionWeights": {}}
    )
    assert "RoutingConfig" not in reset or not reset["RoutingConfig"].get(
        "AdditionalVersionWeights"
    )
