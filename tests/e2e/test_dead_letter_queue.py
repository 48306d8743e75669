"""Dead-letter queues, with the whole server built in this process.

AWS only takes SQS queues and SNS topics as dead-letter targets, and this server hosts
neither yet, so a queue target is registered here the way the queue service will register
itself: under the ``sqs`` ARN service, saying which queues exist and taking the messages.
Everything else (the store, the delivery, real execution environments) is the real thing.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from lambdalite.app import build, shutdown
from lambdalite.config import Settings
from lambdalite.control.records import Outbound
from lambdalite.control.recursion import Lineage
from lambdalite.core.errors import InvalidParameterValueException
from lambdalite.store.base import NewMessage
from tests.e2e.harness import ROLE, function_zip

QUEUE = "arn:aws:sqs:us-east-1:000000000000:dead-letters"
OTHER = "arn:aws:sqs:us-east-1:000000000000:elsewhere"


class QueueTarget:
    def __init__(self) -> None:
        self.messages: list[tuple[str, Outbound]] = []

    def exists(self, arn: str) -> bool:
        return arn in (QUEUE, OTHER)

    async def deliver(self, arn: str, message: Outbound, lineage: Lineage) -> list[NewMessage]:
        self.messages.append((arn, message))
        return []


async def until(probe: Any, timeout: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := probe()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met")
        await asyncio.sleep(0.05)
    return value


async def scenario(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, port=0, async_delay_scale=0.01, keep_alive=30)
    parts = build(settings)
    plane = parts.plane
    target = QueueTarget()
    plane.destinations.register("sqs", target)
    try:
        base = {
            "FunctionName": "doomed",
            "Runtime": "python3.11",
            "Role": ROLE,
            "Handler": "app.handler",
            "Code": {"ZipFile": function_zip("basic")},
        }
        with pytest.raises(InvalidParameterValueException):
            await plane.functions.create_function(
                dict(base, DeadLetterConfig={"TargetArn": QUEUE + "-missing"})
            )
        await plane.functions.create_function(dict(base, DeadLetterConfig={"TargetArn": QUEUE}))
        await plane.event_configs.put_function_event_invoke_config(
            {"FunctionName": "doomed", "MaximumRetryAttempts": 1}
        )

        async def send(event: Any, request_id: str, qualifier: str | None = None) -> None:
            params = {
                "FunctionName": "doomed",
                "InvocationType": "Event",
                "Payload": json.dumps(event).encode(),
            }
            if qualifier:
                params["Qualifier"] = qualifier
            assert await plane.invocations.invoke(params, request_id, None) == {"StatusCode": 202}

        await send({"action": "raise", "message": "dead on arrival"}, "req-failed")
        await send({"ok": True}, "req-fine")
        arn, letter = (await until(lambda: target.messages))[0]
        assert arn == QUEUE and letter.kind == "dead-letter"
        assert json.loads(letter.body) == {"action": "raise", "message": "dead on arrival"}
        assert letter.attributes == {
            "RequestID": ("String", "req-failed"),
            "ErrorCode": ("Number", "200"),
            "ErrorMessage": ("String", "dead on arrival"),
        }
        assert letter.source_arn == "arn:aws:lambda:us-east-1:000000000000:function:doomed"
        assert plane.delivery.figures.outcomes[("doomed", "RetriesExhausted")] == 1

        # The dead-letter target is part of a version's configuration, locked at publish.
        await plane.versions.publish_version({"FunctionName": "doomed"})
        await plane.functions.update_function_configuration(
            {"FunctionName": "doomed", "DeadLetterConfig": {"TargetArn": OTHER}}
        )
        await send({"action": "raise", "message": "v1"}, "req-v1", qualifier="1")
        await send({"action": "raise", "message": "latest"}, "req-latest")
        await until(lambda: len(target.messages) == 3)
        by_request = {m.attributes["RequestID"][1]: a for a, m in target.messages}
        assert by_request["req-v1"] == QUEUE and by_request["req-latest"] == OTHER
        assert plane.delivery.figures.outcomes[("doomed", "Success")] == 1

        # With reserved concurrency 0 the event never runs and is dead-lettered as throttled.
        await plane.concurrency.put_function_concurrency(
            {"FunctionName": "doomed", "ReservedConcurrentExecutions": 0}
        )
        await send({"n": 0}, "req-zero")
        await until(lambda: len(target.messages) == 4)
        _, letter = target.messages[-1]
        assert letter.attributes["RequestID"] == ("String", "req-zero")
        assert letter.attributes["ErrorCode"] == ("Number", "429")
    finally:
        await shutdown(parts)


def test_dead_letters_reach_the_configured_target(tmp_path: Path) -> None:
    asyncio.run(scenario(tmp_path / "data"))
