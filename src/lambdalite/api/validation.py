"""Front-end constraint validation, phrased the way AWS's request validation phrases it.

AWS rejects values that break a constraint written in the service model (required, length,
range, pattern, enum) before the service runs, with ``ValidationException`` and messages like
``Value '100' at 'memorySize' failed to satisfy constraint: Member must have value greater
than or equal to 128``. Tools and tests match on these strings, so the wording, member paths
(lowerCamelCase, dotted, ``list.N.member`` for list items) and value rendering (Java-style
``[a, b]`` / ``{k=v}``) follow what AWS returns. Only members present in the request are
walked; per-shape rules (compiled patterns, bounds) are built once and cached.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from botocore.model import Shape

from lambdalite.api.spec import OperationSpec
from lambdalite.core.errors import InvalidParameterValueException, ValidationException

# Shapes whose enum AWS checks in the service, not the front end, with its own wording.
DEFAULT_SERVICE_ENUMS: frozenset[str] = frozenset({"Runtime"})
_NOT_NULL = "Member must not be null"
_VALID_MAX = 4096
_KEY_TEXT_MAX = 256


@dataclass(frozen=True, slots=True)
class _Rules:
    """Checks for one scalar shape: each returns the violated rule's text or None."""

    checks: tuple[Callable[[Any], str | None], ...]
    descriptions: tuple[str, ...]  # every constraint, for "Member must satisfy constraint: [...]"


_MemberPlan = tuple[str, str, Shape, bool, bool, bool]


class Validator:
    """Validates operation input against the constraints of one service model."""

    def __init__(self, service_enums: Collection[str] = DEFAULT_SERVICE_ENUMS) -> None:
        self._rules: dict[str, _Rules] = {}
        self._plans: dict[str, tuple[_MemberPlan, ...]] = {}
        self._service_enums = frozenset(service_enums)
        # Inputs already found valid, by what their verdict depends on (see ``_known_key``).
        self._valid: set[tuple[Any, ...]] = set()

    def validate(self, op: OperationSpec, params: Mapping[str, Any]) -> None:
        """Raise ``ValidationException`` listing every violation, or the service's own
        ``InvalidParameterValueException`` for enums it checks itself (unknown runtime)."""
        if op.input_shape is None:
            return
        known = self._known_key(op.input_shape, params)
        if known is not None and known in self._valid:
            return
        errors: list[str] = []
        late: list[str] = []
        self._structure(op.input_shape, params, "", False, errors, late)
        if errors:
            count = len(errors)
            noun = "error" if count == 1 else "errors"
            raise ValidationException(f"{count} validation {noun} detected: " + "; ".join(errors))
        if late:
            raise InvalidParameterValueException(late[0])
        if known is not None:
            if len(self._valid) >= _VALID_MAX:
                self._valid.clear()
            self._valid.add(known)

    def _known_key(self, shape: Shape, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """What the verdict on ``params`` depends on, when that is only short strings and
        numbers (or absent members): such inputs repeat (a warm client invokes the same
        function with the same options) and their verdict can be remembered. None when a
        value that is checked is anything else (a structure, a list, a long string)."""
        key: list[Any] = [shape.name]
        for name, _, _, required, _, checked in self._plan_for(shape):
            if not (checked or required):
                continue
            item = params.get(name)
            if not checked:
                key.append(item is None)
            elif item is None or (type(item) is str and len(item) <= _KEY_TEXT_MAX):
                key.append(item)
            elif type(item) in (int, bool):
                key.append((type(item), item))  # True == 1, but not as an input
            else:
                return None
        return tuple(key)

    def errors(self, op: OperationSpec, params: Mapping[str, Any]) -> list[str]:
        """The individual violation messages, without raising (useful for callers and tests)."""
        errors: list[str] = []
        if op.input_shape is not None:
            self._structure(op.input_shape, params, "", False, errors, [])
        return errors

    # ------------------------------------------------------------------ walking

    def _structure(
        self,
        shape: Shape,
        value: Mapping[str, Any],
        prefix: str,
        secret: bool,
        errors: list[str],
        late: list[str],
    ) -> None:
        if shape.is_document_type or not isinstance(value, Mapping):
            return
        for name, segment, member, required, sensitive, checked in self._plan_for(shape):
            item = value.get(name)
            if item is None:
                if required:
                    errors.append(
                        f"Value null at '{prefix}{segment}' failed to satisfy constraint: "
                        f"{_NOT_NULL}"
                    )
            elif checked:
                self._member(member, item, prefix + segment, secret or sensitive, errors, late)

    def _plan_for(self, shape: Shape) -> tuple[_MemberPlan, ...]:
        """Per structure: member name, path segment, shape, required, sensitive, and whether
        the value needs any check at all (unconstrained scalars are skipped)."""
        plan = self._plans.get(shape.name)
        if plan is None:
            required = set(shape.required_members)
            plan = tuple(
                (
                    name,
                    name[:1].lower() + name[1:],
                    member,
                    name in required,
                    _sensitive(member),
                    self._needs_check(member),
                )
                for name, member in shape.members.items()
            )
            self._plans[shape.name] = plan
        return plan

    def _needs_check(self, shape: Shape) -> bool:
        if shape.type_name in ("structure", "list", "map"):
            return True
        return bool(self._rules_for(shape).checks) or shape.name in self._service_enums

    def _member(
        self, shape: Shape, value: Any, path: str, secret: bool, errors: list[str], late: list[str]
    ) -> None:
        kind = shape.type_name
        if kind == "structure":
            self._structure(shape, value, f"{path}.", secret, errors, late)
            return
        if kind in ("list", "map"):
            self._collection(shape, value, path, secret, errors, late)
            return
        rules = self._rules_for(shape)
        for check in rules.checks:
            rule = check(value)
            if rule is not None:
                errors.append(_message(value, path, secret, rule))
        if shape.name in self._service_enums and isinstance(value, str):
            self._service_enum(shape, value, path, late)

    def _collection(
        self, shape: Shape, value: Any, path: str, secret: bool, errors: list[str], late: list[str]
    ) -> None:
        if not isinstance(value, list | Mapping):
            return
        size = _length_rules(shape)
        for check in size.checks:
            rule = check(value)
            if rule is not None:
                errors.append(_message(value, path, secret, rule))
        if isinstance(value, list):
            element = shape.member
            if element.type_name in ("structure", "list", "map"):
                for i, item in enumerate(value, start=1):
                    if item is not None:
                        self._member(element, item, f"{path}.{i}.member", secret, errors, late)
                return
            self._elements(element, value, value, path, secret, "Member", errors, late)
            return
        self._elements(shape.key, list(value), value, path, secret, "Map keys", errors, late)
        element = shape.value
        if element.type_name in ("structure", "list", "map"):
            for key, item in value.items():
                if item is not None:
                    self._member(element, item, f"{path}.{key}.member", secret, errors, late)
            return
        self._elements(
            element, list(value.values()), value, path, secret, "Map value", errors, late
        )

    def _elements(
        self,
        shape: Shape,
        items: list[Any],
        whole: Any,
        path: str,
        secret: bool,
        subject: str,
        errors: list[str],
        late: list[str],
    ) -> None:
        rules = self._rules_for(shape)
        secret = secret or _sensitive(shape)
        nullable = subject == "Map keys"
        descriptions = rules.descriptions if nullable else (*rules.descriptions, _NOT_NULL)
        bad = any(item is None for item in items) and not nullable
        bad = bad or any(
            check(item) is not None for item in items if item is not None for check in rules.checks
        )
        if bad:
            rule = f"{subject} must satisfy constraint: [{', '.join(descriptions)}]"
            errors.append(_message(whole, path, secret, rule))
        elif shape.name in self._service_enums:
            for item in items:
                if isinstance(item, str):
                    self._service_enum(shape, item, path, late)

    def _service_enum(self, shape: Shape, value: str, path: str, late: list[str]) -> None:
        allowed = shape.enum
        if allowed and value not in allowed and not value.startswith("arn:"):
            late.append(
                f"Value {value} at '{path}' failed to satisfy constraint: Member must satisfy "
                f"enum value set: [{', '.join(allowed)}] or be a valid ARN"
            )

    # ------------------------------------------------------------------- rules

    def _rules_for(self, shape: Shape) -> _Rules:
        rules = self._rules.get(shape.name)
        if rules is None:
            rules = self._build_rules(shape)
            self._rules[shape.name] = rules
        return rules

    def _build_rules(self, shape: Shape) -> _Rules:
        kind = shape.type_name
        if kind in ("string", "blob"):
            base = _length_rules(shape)
            checks = list(base.checks)
            descriptions = list(base.descriptions)
            pattern = shape.metadata.get("pattern") if kind == "string" else None
            compiled = compile_pattern(pattern) if pattern else None
            if pattern:
                descriptions.append(f"Member must satisfy regular expression pattern: {pattern}")
            if compiled is not None:
                rule = descriptions[-1]
                checks.append(lambda v: None if compiled.fullmatch(v) else rule)
            enum = shape.metadata.get("enum")
            if enum and shape.name not in self._service_enums:
                allowed = frozenset(enum)
                enum_rule = f"Member must satisfy enum value set: [{', '.join(enum)}]"
                descriptions.append(enum_rule)
                checks.append(lambda v: None if v in allowed else enum_rule)
            return _Rules(tuple(checks), tuple(descriptions))
        if kind in ("integer", "long", "double", "float"):
            low, high = shape.metadata.get("min"), shape.metadata.get("max")
            checks = []
            descriptions = []
            if high is not None:
                upper = f"Member must have value less than or equal to {_number(high, kind)}"
                descriptions.append(upper)
                checks.append(lambda v: upper if v > high else None)
            if low is not None:
                lower = f"Member must have value greater than or equal to {_number(low, kind)}"
                descriptions.append(lower)
                checks.append(lambda v: lower if v < low else None)
            return _Rules(tuple(checks), tuple(descriptions))
        return _Rules((), ())


def _length_rules(shape: Shape) -> _Rules:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    checks: list[Callable[[Any], str | None]] = []
    descriptions: list[str] = []
    if high is not None:
        upper = f"Member must have length less than or equal to {high}"
        descriptions.append(upper)
        checks.append(lambda v: upper if len(v) > high else None)
    if low is not None:
        lower = f"Member must have length greater than or equal to {low}"
        descriptions.append(lower)
        checks.append(lambda v: lower if len(v) < low else None)
    return _Rules(tuple(checks), tuple(descriptions))


def _sensitive(shape: Shape) -> bool:
    return bool(shape.metadata.get("sensitive"))


def _message(value: Any, path: str, secret: bool, rule: str) -> str:
    shown = "Value" if secret else f"Value '{render(value)}'"
    return f"{shown} at '{path}' failed to satisfy constraint: {rule}"


def _number(bound: Any, kind: str) -> str:
    return java_double(float(bound)) if kind in ("double", "float") else str(int(bound))


def render(value: Any) -> str:
    """Render a value like AWS's Java front end does in validation messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, bytes | bytearray | memoryview):
        size = len(value)
        return f"java.nio.HeapByteBuffer[pos=0 lim={size} cap={size}]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if value is None:
        return "null"
    return str(value)


def java_double(value: float) -> str:
    """``Double.toString``: plain decimals in [1e-3, 1e7), otherwise ``d.dddEn``."""
    if value != value or value in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[repr(value)]
    if value == 0:
        return "-0.0" if str(value).startswith("-") else "0.0"
    if 1e-3 <= abs(value) < 1e7:
        text = repr(value)
        return text if "." in text or "e" in text else f"{text}.0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits)).rstrip("0") or "0"
    power = len(digits) + exponent - 1
    mantissa = f"{text[0]}.{text[1:] or '0'}"
    return f"{'-' if sign else ''}{mantissa}E{power}"


_CLASS_ESCAPES = {r"\p{L}": r"\w", r"\p{N}": r"\w", r"\p{Z}": r"\s", r"\p{Alnum}": r"\w"}


def compile_pattern(pattern: str) -> re.Pattern[str] | None:
    """Compile a model (Java) regex for ``fullmatch``; None when Python cannot express it.

    The models use a few Java-only forms: ``\\p{L}``-style classes (approximated by ``\\w``
    and ``\\s`` inside character classes, which only makes the check more lenient) and a
    literal ``-`` after a class escape (``[\\w-_]``), which Python rejects as a bad range.
    """
    for candidate in (pattern, _javaish(pattern)):
        try:
            return re.compile(candidate)
        except re.error:
            continue
    return None


def _javaish(pattern: str) -> str:
    for java, python in _CLASS_ESCAPES.items():
        pattern = pattern.replace(java, python)
    return re.sub(r"(\\[wdsWDS])-", r"\1\\-", pattern)
