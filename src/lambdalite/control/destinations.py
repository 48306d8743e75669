"""Where invocation records and dead letters go, by the service named in the target's ARN.

A target kind registers under its ARN service (``lambda`` is built in; queues, topics, buses
and buckets register here when this server hosts them). A destination or dead-letter target
is accepted only if a registered kind says the resource exists, otherwise the request fails
with the error AWS gives for an unusable destination. ``deliver`` either hands the message
over at once or returns queue messages to be committed together with the finished event, which
is how a Lambda destination becomes one more durable asynchronous invocation.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Protocol

from lambdalite.control.asyncevent import AsyncEvent
from lambdalite.control.catalog import Catalog
from lambdalite.control.records import Outbound
from lambdalite.control.recursion import Lineage
from lambdalite.core.arn import LATEST, VERSION_RE, ArnFormatter, parse_function
from lambdalite.core.errors import (
    InvalidParameterValueException,
    LambdaError,
    ResourceNotFoundException,
    ValidationException,
)
from lambdalite.store.base import NewMessage

_ARN = re.compile(r"^arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9-]+):([a-z0-9-]*):(\d{12})?:(.+)$")
# Services AWS accepts as destinations (S3 on failure only) and as dead-letter targets.
DESTINATION_SERVICES = ("lambda", "sqs", "sns", "events", "s3")
DEAD_LETTER_SERVICES = ("sqs", "sns")


class UndeliverableError(Exception):
    """The target vanished or refused the message; the event is finished regardless."""


class DestinationTarget(Protocol):
    def exists(self, arn: str) -> bool: ...

    async def deliver(self, arn: str, message: Outbound, lineage: Lineage) -> list[NewMessage]:
        """Send ``message`` now and return [], or return messages to commit with the ack."""


class LambdaTarget:
    """Another function as a destination: the record becomes its asynchronous event."""

    def __init__(self, catalog: Catalog, arns: ArnFormatter) -> None:
        self.catalog = catalog
        self.arns = arns

    def _resolve(self, arn: str) -> tuple[str, str | None]:
        try:
            ref = parse_function(arn)
            self.arns.check_ref(ref)
            q = ref.qualifier
            if q is None or q == LATEST:
                self.catalog.function(ref.name)
            elif VERSION_RE.match(q):
                self.catalog.version(ref.name, q)
            else:
                self.catalog.alias(ref.name, q)
        except (ResourceNotFoundException, ValidationException) as exc:
            raise UndeliverableError(str(exc)) from None
        return ref.name, ref.qualifier

    def exists(self, arn: str) -> bool:
        try:
            self._resolve(arn)
        except UndeliverableError:
            return False
        return True

    async def deliver(self, arn: str, message: Outbound, lineage: Lineage) -> list[NewMessage]:
        name, qualifier = self._resolve(arn)
        event = AsyncEvent(
            request_id=str(uuid.uuid4()),
            function=name,
            qualifier=qualifier,
            invoked_arn=self.arns.function(name, qualifier),
            trace_id=lineage.trace(f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}"),
            chain=lineage.chain,
            depth=lineage.depth,
        )
        return [event.message(message.body.encode())]


def arn_service(arn: str) -> str | None:
    m = _ARN.match(arn)
    return m.group(2) if m else None


class Destinations:
    def __init__(self, catalog: Catalog, arns: ArnFormatter) -> None:
        self.targets: dict[str, DestinationTarget] = {"lambda": LambdaTarget(catalog, arns)}

    def register(self, service: str, target: DestinationTarget) -> None:
        self.targets[service] = target

    def _exists(self, arn: str) -> bool:
        target = self.targets.get(arn_service(arn) or "")
        return target is not None and target.exists(arn)

    # -- validation ---------------------------------------------------------------------------
    def check_destination_config(self, function: str, config: dict[str, Any]) -> None:
        """Validate ``DestinationConfig`` of an event invoke config of ``function``."""
        success = (config.get("OnSuccess") or {}).get("Destination") or None
        failure = (config.get("OnFailure") or {}).get("Destination") or None
        for side, arn in (("OnSuccess", success), ("OnFailure", failure)):
            if arn is None:
                continue
            service = arn_service(arn)
            if service not in DESTINATION_SERVICES or (service == "s3" and side == "OnSuccess"):
                on_success = f"OnSuccess(destination={success})" if success else "null"
                on_failure = f"OnFailure(destination={failure})" if failure else "null"
                raise InvalidParameterValueException(
                    f"The provided destination config DestinationConfig(onSuccess={on_success}, "
                    f"onFailure={on_failure}) is invalid."
                )
            if service == "lambda" and _same_function(arn, function):
                raise InvalidParameterValueException(
                    "You can't specify the function as a destination for itself."
                )
            if not self._exists(arn):
                raise InvalidParameterValueException(f"The destination ARN {arn} is invalid.")

    def check_dead_letter_config(self, config: dict[str, Any] | None) -> None:
        """Validate a function's ``DeadLetterConfig`` (an SQS queue or SNS topic here)."""
        arn = (config or {}).get("TargetArn") or None
        if arn is None:
            return
        if arn_service(arn) not in DEAD_LETTER_SERVICES or not self._exists(arn):
            raise InvalidParameterValueException(
                f"The provided target arn {arn} is invalid: the dead-letter target must be an "
                "existing SQS queue or SNS topic."
            )

    # -- delivery -------------------------------------------------------------------------
    async def deliver(self, arn: str, message: Outbound, lineage: Lineage) -> list[NewMessage]:
        target = self.targets.get(arn_service(arn) or "")
        if target is None:
            raise UndeliverableError(f"no target on this server serves {arn}")
        try:
            return await target.deliver(arn, message, lineage)
        except LambdaError as exc:
            raise UndeliverableError(exc.message) from None


def _same_function(arn: str, function: str) -> bool:
    try:
        return parse_function(arn).name == function
    except LambdaError:
        return False


def record_json(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)
