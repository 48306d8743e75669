"""Function identifiers: names, full and partial ARNs, and qualifiers.

AWS accepts a function as ``my-fn``, ``my-fn:alias``, ``123456789012:function:my-fn[:q]`` or
``arn:aws:lambda:<region>:<account>:function:my-fn[:q]``; everything in the package resolves
them here so the rules live in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lambdalite.core.errors import (
    InvalidParameterValueException,
    ResourceNotFoundException,
    ValidationException,
)

LATEST = "$LATEST"
NAME_RE = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")
ALIAS_RE = re.compile(r"^(?!^[0-9]+$)[a-zA-Z0-9-_]{1,128}$")
VERSION_RE = re.compile(r"^[0-9]+$")
_QUALIFIER_RE = re.compile(r"^(\$LATEST|[a-zA-Z0-9-_]{1,128})$")
_FULL_RE = re.compile(
    r"^arn:(?P<partition>aws[a-zA-Z-]*):lambda:(?P<region>[a-z]{2}(-gov)?-[a-z]+-\d{1})?:"
    r"(?P<account>\d{12})?:function:(?P<name>[^:]+)(:(?P<qualifier>[^:]+))?$"
)
_PARTIAL_RE = re.compile(r"^(?P<account>\d{12}):function:(?P<name>[^:]+)(:(?P<qualifier>[^:]+))?$")


@dataclass(frozen=True)
class FunctionRef:
    """A parsed function identifier; ``qualifier`` is None when none was given."""

    name: str
    qualifier: str | None = None
    account: str | None = None
    region: str | None = None


def parse_function(identifier: str, qualifier: str | None = None) -> FunctionRef:
    """Parse any accepted function identifier and merge an explicit ``Qualifier`` parameter."""
    ref = _split(identifier)
    if qualifier is not None and qualifier != "":
        if ref.qualifier is not None and ref.qualifier != qualifier:
            raise InvalidParameterValueException(
                "The derived qualifier from the function name does not match the specified "
                "qualifier."
            )
        if not _QUALIFIER_RE.match(qualifier):
            raise InvalidParameterValueException(f"Invalid qualifier: {qualifier}")
        ref = FunctionRef(ref.name, qualifier, ref.account, ref.region)
    return ref


def _split(identifier: str) -> FunctionRef:
    if identifier.startswith("arn:"):
        m = _FULL_RE.match(identifier)
        if not m:
            raise _invalid(identifier)
        ref = FunctionRef(m["name"], m["qualifier"], m["account"], m["region"])
    elif ":function:" in identifier:
        m = _PARTIAL_RE.match(identifier)
        if not m:
            raise _invalid(identifier)
        ref = FunctionRef(m["name"], m["qualifier"], m["account"])
    else:
        name, _, qual = identifier.partition(":")
        if ":" in qual:
            raise _invalid(identifier)
        ref = FunctionRef(name, qual or None)
    if not NAME_RE.match(ref.name):
        raise _invalid(identifier)
    if ref.qualifier is not None and not _QUALIFIER_RE.match(ref.qualifier):
        raise _invalid(identifier)
    return ref


def _invalid(identifier: str) -> ValidationException:
    """Malformed identifiers are reported like AWS's front end does for the path member."""
    pattern = (
        "(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:)?"
        "(\\d{12}:)?(function:)?([a-zA-Z0-9-_\\.]+)(:(\\$LATEST(\\.PUBLISHED)?|[a-zA-Z0-9-_]+))?"
    )
    return ValidationException(
        f"1 validation error detected: Value '{identifier}' at 'functionName' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {pattern}"
    )


@dataclass(frozen=True)
class ArnFormatter:
    """Builds ARNs for one region and account."""

    region: str
    account: str

    def function(self, name: str, qualifier: str | None = None) -> str:
        base = f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"
        return f"{base}:{qualifier}" if qualifier else base

    def layer(self, name: str, version: int | None = None) -> str:
        base = f"arn:aws:lambda:{self.region}:{self.account}:layer:{name}"
        return f"{base}:{version}" if version is not None else base

    def check_ref(self, ref: FunctionRef) -> None:
        """A reference to another account or region names a function that is not here."""
        if (ref.account and ref.account != self.account) or (
            ref.region and ref.region != self.region
        ):
            raise ResourceNotFoundException(
                f"Function not found: {self.function(ref.name, ref.qualifier)}"
            )
