"""Function CRUD, configuration, tags, policies and concurrency through unmodified boto3."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.e2e.harness import ServerProcess, create, function_zip, zip_files

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["Error"]["Message"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_create_get_and_waiters(lam: Any, name: str) -> None:
    package = function_zip("basic")
    created = create(
        lam,
        name,
        Description="hello",
        MemorySize=256,
        Timeout=5,
        Environment={"Variables": {"MY_KEY": "value"}},
        Tags={"team": "a"},
    )
    assert created["FunctionName"] == name
    assert created["FunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert created["Version"] == "$LATEST"
    assert created["CodeSize"] == len(package)
    assert created["CodeSha256"] == base64.b64encode(hashlib.sha256(package).digest()).decode()
    assert created["State"] == "Active" and created["LastUpdateStatus"] == "Successful"
    assert ISO.match(created["LastModified"])
    assert created["MemorySize"] == 256 and created["Timeout"] == 5
    assert created["Environment"] == {"Variables": {"MY_KEY": "value"}}
    assert created["EphemeralStorage"] == {"Size": 512}
    assert created["Architectures"] == ["x86_64"] and created["PackageType"] == "Zip"
    lam.get_waiter("function_active_v2").wait(FunctionName=name)

    got = lam.get_function(FunctionName=name)
    assert got["Configuration"]["RevisionId"] == created["RevisionId"]
    assert got["Tags"] == {"team": "a"}
    assert got["Code"]["RepositoryType"] == "S3"
    downloaded = httpx.get(got["Code"]["Location"])
    assert downloaded.status_code == 200 and downloaded.content == package

    config = lam.get_function_configuration(FunctionName=name)
    assert config["Handler"] == "app.handler" and config["Description"] == "hello"


def test_identifier_forms(lam: Any, server: ServerProcess, name: str) -> None:
    create(lam, name)
    arn = f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    for identifier in (name, arn, f"000000000000:function:{name}", f"{name}:$LATEST"):
        assert lam.get_function_configuration(FunctionName=identifier)["FunctionName"] == name
    # Percent-encoded ARN in the path, and a trailing slash, sent by hand.
    response = httpx.get(
        f"{server.endpoint}/2015-03-31/functions/{quote(arn, safe='')}/configuration/"
    )
    assert response.status_code == 200 and response.json()["FunctionName"] == name
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName=f"{name}:1", Qualifier="2")
    assert error_of(exc)[0] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName="arn:aws:lambda:us-east-1:111111111111:function:" + name)
    assert error_of(exc)[:1] == ("ResourceNotFoundException",)


def test_not_found_and_conflict(lam: Any, name: str) -> None:
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as exc:
        lam.get_function(FunctionName=name)
    assert error_of(exc) == (
        "ResourceNotFoundException",
        f"Function not found: arn:aws:lambda:us-east-1:000000000000:function:{name}",
        404,
    )
    create(lam, name)
    with pytest.raises(lam.exceptions.ResourceConflictException) as exc:
        create(lam, name)
    assert error_of(exc) == ("ResourceConflictException", f"Function already exist: {name}", 409)


def test_list_functions_paginates(lam: Any, name: str) -> None:
    names = [f"{name}-{i}" for i in range(5)]
    for n in names:
        create(lam, n)
    seen: list[str] = []
    for page in lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 2}):
        assert len(page["Functions"]) <= 2
        seen += [f["FunctionName"] for f in page["Functions"]]
    assert [n for n in seen if n.startswith(name)] == names


def test_update_code_and_configuration(lam: Any, name: str) -> None:
    created = create(lam, name)
    updated = lam.update_function_configuration(
        FunctionName=name, MemorySize=512, Environment={"Variables": {"MY_A": "1"}}
    )
    assert updated["MemorySize"] == 512 and updated["RevisionId"] != created["RevisionId"]
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    new_zip = zip_files({"app.py": "def handler(e, c):\n    return 'v2'\n"})
    code = lam.update_function_code(FunctionName=name, ZipFile=new_zip)
    assert code["CodeSize"] == len(new_zip) and code["MemorySize"] == 512
    assert lam.invoke(FunctionName=name)["Payload"].read() == b'"v2"'
    # Optimistic concurrency: a stale RevisionId is refused with 412.
    with pytest.raises(lam.exceptions.PreconditionFailedException) as exc:
        lam.update_function_configuration(
            FunctionName=name, Timeout=10, RevisionId=created["RevisionId"]
        )
    assert error_of(exc)[2] == 412
    ok = lam.update_function_configuration(
        FunctionName=name, Timeout=10, RevisionId=code["RevisionId"]
    )
    assert ok["Timeout"] == 10


def test_delete_function(lam: Any, name: str) -> None:
    create(lam, name)
    assert lam.delete_function(FunctionName=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.delete_function(FunctionName=name)


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (
            {"MemorySize": 100},
            "ValidationException",
            "1 validation error detected: Value '100' at 'memorySize' failed to satisfy constraint: "
            "Member must have value greater than or equal to 128",
        ),
        ({"MemorySize": 10241}, "InvalidParameterValueException", "less than or equal to 10240"),
        ({"Timeout": 0}, "ValidationException", "at 'timeout'"),
        ({"Timeout": 901}, "InvalidParameterValueException", "less than or equal to 900"),
        # The model itself caps /tmp at 10,240 MB, so AWS's front end answers this one.
        (
            {"EphemeralStorage": {"Size": 10241}},
            "ValidationException",
            "less than or equal to 10240",
        ),
        ({"EphemeralStorage": {"Size": 100}}, "ValidationException", "ephemeralStorage.size"),
        (
            {"Runtime": "python9.9"},
            "InvalidParameterValueException",
            "Value python9.9 at 'runtime' failed to satisfy constraint",
        ),
        ({"Runtime": "python3.7"}, "InvalidParameterValueException", "no longer supported"),
        ({"Handler": "has space"}, "ValidationException", "at 'handler'"),
        ({"Role": "r1"}, "ValidationException", "at 'role'"),
        (
            {"Architectures": ["x86_64", "arm64"]},
            "ValidationException",
            "Member must have length less than or equal to 1",
        ),
        (
            {"Environment": {"Variables": {"AWS_REGION": "x"}}},
            "InvalidParameterValueException",
            "Reserved keys used in this request: AWS_REGION",
        ),
        (
            {"Environment": {"Variables": {"BIG": "x" * 5000}}},
            "InvalidParameterValueException",
            "exceeded the 4KB limit",
        ),
        (
            {"Environment": {"Variables": {"1bad": "x"}}},
            "ValidationException",
            "environment.variables",
        ),
        (
            {"Code": {"ZipFile": b"not a zip"}},
            "InvalidParameterValueException",
            "Could not unzip uploaded file",
        ),
        ({"Code": {"S3Bucket": "bucket", "S3Key": "k"}}, "InvalidParameterValueException", "S3"),
        (
            {"Code": {"ZipFile": zip_files({"../evil.py": "x"})}},
            "InvalidParameterValueException",
            "",
        ),
    ],
)
def test_create_validation(
    server: ServerProcess, lam: Any, name: str, extra: dict[str, Any], code: str, message: str
) -> None:
    # boto3 checks some constraints itself; switch that off so the server's answer shows.
    raw = server.client(parameter_validation=False)
    with pytest.raises(ClientError) as exc:
        create(raw, name, **extra)
    got_code, got_message, status = error_of(exc)
    assert (got_code, status) == (code, 400), got_message
    assert message in got_message
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name)


def test_bad_names(lam: Any) -> None:
    with pytest.raises(ClientError) as exc:
        create(lam, "x" * 65)
    code, message, _ = error_of(exc)
    assert code == "ValidationException"
    assert (
        "at 'functionName' failed to satisfy constraint: Member must have length less than or equal to 64"
        in message
    )
    with pytest.raises(ClientError) as exc:
        create(lam, "bad name!")
    assert error_of(exc)[0] == "ValidationException"


def test_oversized_zip(lam: Any, name: str) -> None:
    import os

    huge = zip_files({"app.py": "x", "blob.bin": os.urandom(51 * 1024 * 1024)})
    with pytest.raises(ClientError) as exc:
        create(lam, name, Code={"ZipFile": huge})
    code, message, status = error_of(exc)
    assert status == 413 and code == "RequestEntityTooLargeException"
    assert "52428800" in message


def test_tags(lam: Any, name: str) -> None:
    arn = create(lam, name)["FunctionArn"]
    lam.tag_resource(Resource=arn, Tags={"a": "1", "b": "2"})
    assert lam.list_tags(Resource=arn)["Tags"] == {"a": "1", "b": "2"}
    lam.untag_resource(Resource=arn, TagKeys=["a"])
    assert lam.list_tags(Resource=arn)["Tags"] == {"b": "2"}
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.list_tags(Resource=arn + "-missing")


def test_permissions(lam: Any, name: str) -> None:
    create(lam, name)
    added = lam.add_permission(
        FunctionName=name,
        StatementId="s3",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn="arn:aws:s3:::bucket",
        SourceAccount="123456789012",
    )
    import json

    statement = json.loads(added["Statement"])
    assert statement["Sid"] == "s3" and statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Condition"]["ArnLike"] == {"AWS:SourceArn": "arn:aws:s3:::bucket"}
    policy = lam.get_policy(FunctionName=name)
    document = json.loads(policy["Policy"])
    assert document["Version"] == "2012-10-17" and len(document["Statement"]) == 1
    assert (
        policy["RevisionId"] == lam.get_function(FunctionName=name)["Configuration"]["RevisionId"]
    )
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.add_permission(
            FunctionName=name,
            StatementId="s3",
            Action="lambda:InvokeFunction",
            Principal="s3.amazonaws.com",
        )
    lam.remove_permission(FunctionName=name, StatementId="s3")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_policy(FunctionName=name)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.remove_permission(FunctionName=name, StatementId="s3")


def test_reserved_concurrency_and_account(lam: Any, name: str) -> None:
    create(lam, name)
    before = lam.get_account_settings()
    assert before["AccountLimit"]["ConcurrentExecutions"] == 1000
    assert (
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)[
            "ReservedConcurrentExecutions"
        ]
        == 5
    )
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 5
    assert lam.get_function(FunctionName=name)["Concurrency"] == {"ReservedConcurrentExecutions": 5}
    after = lam.get_account_settings()
    assert (
        before["AccountLimit"]["UnreservedConcurrentExecutions"]
        - after["AccountLimit"]["UnreservedConcurrentExecutions"]
    ) == 5
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as exc:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=950)
    assert "below its minimum value of [100]" in error_of(exc)[1]
    lam.delete_function_concurrency(FunctionName=name)
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)


def test_unknown_and_unimplemented_operations(server: ServerProcess, lam: Any) -> None:
    response = httpx.get(f"{server.endpoint}/2099-01-01/nothing-here")
    assert response.status_code == 404
    assert response.headers["x-amzn-errortype"] == "UnknownOperationException"
    assert response.headers["x-amzn-requestid"]
    assert response.json()
    with pytest.raises(ClientError) as exc:
        lam.list_code_signing_configs()
    code, message, status = error_of(exc)
    assert code == "NotImplementedException"
    assert status == 501 and "ListCodeSigningConfigs" in message


def test_request_id_header(server: ServerProcess) -> None:
    response = httpx.get(f"{server.endpoint}/2016-08-19/account-settings")
    assert response.status_code == 200
    assert re.match(r"^[0-9a-f-]{36}$", response.headers["x-amzn-requestid"])
