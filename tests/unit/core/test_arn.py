from __future__ import annotations

import pytest

from lambdalite.core.arn import ArnFormatter, FunctionRef, parse_function
from lambdalite.core.errors import (
    InvalidParameterValueException,
    ResourceNotFoundException,
    ValidationException,
)


@pytest.mark.parametrize(
    ("identifier", "qualifier", "expected"),
    [
        ("fn", None, FunctionRef("fn")),
        ("fn:prod", None, FunctionRef("fn", "prod")),
        ("fn:$LATEST", None, FunctionRef("fn", "$LATEST")),
        ("fn", "7", FunctionRef("fn", "7")),
        ("123456789012:function:fn", None, FunctionRef("fn", None, "123456789012")),
        ("123456789012:function:fn:3", None, FunctionRef("fn", "3", "123456789012")),
        (
            "arn:aws:lambda:eu-west-1:123456789012:function:fn:live",
            None,
            FunctionRef("fn", "live", "123456789012", "eu-west-1"),
        ),
        ("fn:prod", "prod", FunctionRef("fn", "prod")),
    ],
)
def test_parse_accepts_every_form(
    identifier: str, qualifier: str | None, expected: FunctionRef
) -> None:
    assert parse_function(identifier, qualifier) == expected


@pytest.mark.parametrize("identifier", ["a:b:c", "bad name", "", "arn:aws:s3:::bucket", "x" * 65])
def test_parse_rejects_malformed(identifier: str) -> None:
    with pytest.raises(ValidationException) as exc:
        parse_function(identifier)
    assert "at 'functionName' failed to satisfy constraint" in exc.value.message


def test_mismatching_qualifiers() -> None:
    with pytest.raises(InvalidParameterValueException) as exc:
        parse_function("fn:1", "2")
    assert exc.value.message == (
        "The derived qualifier from the function name does not match the specified qualifier."
    )


def test_formatter_and_foreign_references() -> None:
    arns = ArnFormatter("us-east-1", "000000000000")
    assert arns.function("fn") == "arn:aws:lambda:us-east-1:000000000000:function:fn"
    assert arns.function("fn", "$LATEST").endswith(":function:fn:$LATEST")
    assert arns.layer("lib", 2) == "arn:aws:lambda:us-east-1:000000000000:layer:lib:2"
    arns.check_ref(parse_function("000000000000:function:fn"))
    with pytest.raises(ResourceNotFoundException):
        arns.check_ref(parse_function("111111111111:function:fn"))
    with pytest.raises(ResourceNotFoundException):
        arns.check_ref(parse_function("arn:aws:lambda:eu-west-1:000000000000:function:fn"))
