"""Everything survives a restart, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ServerProcess, create


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_restart_keeps_everything(
    tmp_path: Path, fresh_store_url: str | None, stop_signal: int
) -> None:
    first = ServerProcess(tmp_path, fresh_store_url).start()
    lam = first.client()
    created = create(lam, "keeper", Environment={"Variables": {"MY_K": "v"}}, Tags={"t": "1"})
    lam.publish_version(FunctionName="keeper")
    lam.create_alias(FunctionName="keeper", Name="live", FunctionVersion="1")
    lam.put_function_concurrency(FunctionName="keeper", ReservedConcurrentExecutions=3)
    lam.add_permission(
        FunctionName="keeper",
        StatementId="s",
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
    )
    request_id = lam.invoke(FunctionName="keeper", Payload=b'{"before": true}')["ResponseMetadata"][
        "RequestId"
    ]
    assert first.stop(stop_signal) == 0

    second = ServerProcess(tmp_path, fresh_store_url).start()
    try:
        lam = second.client()
        got = lam.get_function(FunctionName="keeper")
        assert (
            got["Configuration"]["RevisionId"]
            == lam.get_function_configuration(FunctionName="keeper")["RevisionId"]
        )
        assert got["Configuration"]["CodeSha256"] == created["CodeSha256"]
        assert got["Configuration"]["Environment"] == {"Variables": {"MY_K": "v"}}
        assert got["Tags"] == {"t": "1"}
        assert got["Concurrency"] == {"ReservedConcurrentExecutions": 3}
        assert [
            v["Version"] for v in lam.list_versions_by_function(FunctionName="keeper")["Versions"]
        ] == ["$LATEST", "1"]
        assert lam.get_alias(FunctionName="keeper", Name="live")["FunctionVersion"] == "1"
        assert (
            json.loads(lam.get_policy(FunctionName="keeper")["Policy"])["Statement"][0]["Sid"]
            == "s"
        )
        body = json.loads(
            lam.invoke(FunctionName="keeper", Qualifier="live", Payload=b"{}")["Payload"].read()
        )
        assert body["env"]["MY_K"] == "v"
        logs: Any = second.client("logs")
        events = logs.filter_log_events(
            logGroupName="/aws/lambda/keeper", filterPattern=request_id
        )["events"]
        assert any(e["message"].startswith(f"REPORT RequestId: {request_id}") for e in events)
    finally:
        assert second.stop() == 0
