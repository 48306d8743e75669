"""Model-constraint validation, phrased as AWS's front end phrases ValidationException."""

from __future__ import annotations

from typing import Any

import pytest

from lambdalite.api.spec import ServiceSpec
from lambdalite.api.validation import Validator, compile_pattern, java_double, render
from lambdalite.core.errors import InvalidParameterValueException, ValidationException

ROLE = "arn:aws:iam::123456789012:role/lambda-role"
VALID_CREATE: dict[str, Any] = {
    "FunctionName": "my-fn",
    "Role": ROLE,
    "Code": {"ZipFile": b"PK"},
    "Runtime": "python3.12",
    "Handler": "app.handler",
}


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator()


def _message(spec: ServiceSpec, validator: Validator, op: str, params: dict[str, Any]) -> str:
    with pytest.raises(ValidationException) as info:
        validator.validate(spec.operation(op), params)
    assert info.value.status == 400
    return info.value.message


def test_valid_input_passes(lambda_spec: ServiceSpec, validator: Validator) -> None:
    validator.validate(lambda_spec.operation("CreateFunction"), VALID_CREATE)
    validator.validate(
        lambda_spec.operation("Invoke"), {"FunctionName": "my-fn:prod", "Payload": b""}
    )


def test_name_longer_than_the_model_allows(lambda_spec: ServiceSpec, validator: Validator) -> None:
    name = "f" * 141
    params = {**VALID_CREATE, "FunctionName": name}
    message = _message(lambda_spec, validator, "CreateFunction", params)
    assert message == (
        f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
        "constraint: Member must have length less than or equal to 140"
    )


def test_memory_below_minimum(lambda_spec: ServiceSpec, validator: Validator) -> None:
    message = _message(
        lambda_spec, validator, "CreateFunction", {**VALID_CREATE, "MemorySize": 100}
    )
    assert message == (
        "1 validation error detected: Value '100' at 'memorySize' failed to satisfy "
        "constraint: Member must have value greater than or equal to 128"
    )


def test_two_architectures(lambda_spec: ServiceSpec, validator: Validator) -> None:
    params = {**VALID_CREATE, "Architectures": ["x86_64", "arm64"]}
    message = _message(lambda_spec, validator, "CreateFunction", params)
    assert message == (
        "1 validation error detected: Value '[x86_64, arm64]' at 'architectures' failed to "
        "satisfy constraint: Member must have length less than or equal to 1"
    )


def test_alias_weight_above_one(lambda_spec: ServiceSpec, validator: Validator) -> None:
    params = {
        "FunctionName": "f",
        "Name": "live",
        "FunctionVersion": "1",
        "RoutingConfig": {"AdditionalVersionWeights": {"2": 2.0}},
    }
    message = _message(lambda_spec, validator, "CreateAlias", params)
    assert message == (
        "1 validation error detected: Value '{2=2.0}' at "
        "'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map value must "
        "satisfy constraint: [Member must have value less than or equal to 1.0, Member must "
        "have value greater than or equal to 0.0, Member must not be null]"
    )


def test_missing_required_and_bad_pattern_are_both_reported(
    lambda_spec: ServiceSpec, validator: Validator
) -> None:
    params = {"FunctionName": "my-fn", "Role": "r1"}
    message = _message(lambda_spec, validator, "CreateFunction", params)
    assert message == (
        "2 validation errors detected: Value 'r1' at 'role' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: "
        "arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+; "
        "Value null at 'code' failed to satisfy constraint: Member must not be null"
    )


def test_empty_name_breaks_length_and_pattern(
    lambda_spec: ServiceSpec, validator: Validator
) -> None:
    message = _message(lambda_spec, validator, "GetFunction", {"FunctionName": ""})
    assert message.startswith(
        "2 validation errors detected: Value '' at 'functionName' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1; Value '' at 'functionName' failed "
        "to satisfy constraint: Member must satisfy regular expression pattern: (arn:"
    )


def test_enum_in_a_header(lambda_spec: ServiceSpec, validator: Validator) -> None:
    params = {"FunctionName": "f", "InvocationType": "Sometimes", "Payload": b""}
    message = _message(lambda_spec, validator, "Invoke", params)
    assert message == (
        "1 validation error detected: Value 'Sometimes' at 'invocationType' failed to satisfy "
        "constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
    )


def test_list_member_constraints(lambda_spec: ServiceSpec, validator: Validator) -> None:
    params = {**VALID_CREATE, "Layers": ["arn:aws:lambda:us-east-1:123456789012:layer:x:1", "nope"]}
    message = _message(lambda_spec, validator, "CreateFunction", params)
    assert message == (
        "1 validation error detected: Value '[arn:aws:lambda:us-east-1:123456789012:layer:x:1, "
        "nope]' at 'layers' failed to satisfy constraint: Member must satisfy constraint: "
        "[Member must have length less than or equal to 140, Member must have length greater "
        "than or equal to 1, Member must satisfy regular expression pattern: "
        "arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+, "
        "Member must not be null]"
    )


def test_sensitive_values_are_not_echoed(lambda_spec: ServiceSpec, validator: Validator) -> None:
    params = {**VALID_CREATE, "Environment": {"Variables": {"A": "secret-value"}}}
    message = _message(lambda_spec, validator, "CreateFunction", params)
    assert "secret-value" not in message
    assert message == (
        "1 validation error detected: Value at 'environment.variables' failed to satisfy "
        "constraint: Map keys must satisfy constraint: [Member must satisfy regular expression "
        "pattern: [a-zA-Z]([a-zA-Z0-9_])+]"
    )


def test_nested_paths_are_lower_camel_case(lambda_spec: ServiceSpec, validator: Validator) -> None:
    params = {
        "FunctionName": "f",
        "DestinationConfig": {"OnFailure": {"Destination": "not-an-arn"}},
    }
    message = _message(lambda_spec, validator, "PutFunctionEventInvokeConfig", params)
    assert "at 'destinationConfig.onFailure.destination' failed" in message
    kms = _message(lambda_spec, validator, "CreateFunction", {**VALID_CREATE, "KMSKeyArn": "k"})
    assert "Value 'k' at 'kMSKeyArn' failed to satisfy constraint" in kms


def test_list_of_structures_uses_member_index(
    lambda_spec: ServiceSpec, validator: Validator
) -> None:
    params = {
        **VALID_CREATE,
        "FileSystemConfigs": [{"Arn": "arn:aws:elasticfilesystem:x", "LocalMountPath": "/tmp/x"}],
    }
    errors = validator.errors(lambda_spec.operation("CreateFunction"), params)
    assert (
        "Value '/tmp/x' at 'fileSystemConfigs.1.member.localMountPath' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: /mnt/[a-zA-Z0-9-_.]+"
    ) in errors


def test_unknown_runtime_is_the_services_own_error(
    lambda_spec: ServiceSpec, validator: Validator
) -> None:
    with pytest.raises(InvalidParameterValueException) as info:
        validator.validate(
            lambda_spec.operation("CreateFunction"), {**VALID_CREATE, "Runtime": "cobol85"}
        )
    assert info.value.message.startswith(
        "Value cobol85 at 'runtime' failed to satisfy constraint: Member must satisfy enum "
        "value set: ["
    )
    assert info.value.message.endswith("] or be a valid ARN")
    assert "python3.12" in info.value.message


def test_query_integer_range(lambda_spec: ServiceSpec, validator: Validator) -> None:
    message = _message(lambda_spec, validator, "ListFunctions", {"MaxItems": 0})
    assert message == (
        "1 validation error detected: Value '0' at 'maxItems' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    )


def test_every_model_pattern_compiles(lambda_spec: ServiceSpec, logs_spec: ServiceSpec) -> None:
    patterns = {
        shape["pattern"]
        for spec in (lambda_spec, logs_spec)
        for shape in spec.model._shape_resolver._shape_map.values()
        if "pattern" in shape
    }
    assert patterns
    assert all(compile_pattern(p) is not None for p in patterns)
    unicode_class = compile_pattern("^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$")
    assert unicode_class is not None and unicode_class.fullmatch("Grüße 123")
    dash_after_class = compile_pattern("[\\w-_]*")
    assert dash_after_class is not None and dash_after_class.fullmatch("a-b_c")


def test_java_style_rendering() -> None:
    assert [java_double(x) for x in (2.0, 0.5, 1e7, 1.5e-5, 0.0)] == [
        "2.0",
        "0.5",
        "1.0E7",
        "1.5E-5",
        "0.0",
    ]
    assert render({"a": [1, True, "x"], "b": None}) == "{a=[1, true, x], b=null}"
    assert render(b"abc") == "java.nio.HeapByteBuffer[pos=0 lim=3 cap=3]"
