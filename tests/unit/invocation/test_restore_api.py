"""The Runtime API's SnapStart endpoints, spoken to over real sockets like a runtime would."""

from __future__ import annotations

import json

from lambdalite.invocation.runtime_api import RuntimeApi

from .conftest import run_async
from .test_runtime_api import RawClient

RESTORE_NEXT = "/2018-06-01/runtime/restore/next"
RESTORE_ERROR = "/2018-06-01/runtime/restore/error"


@run_async
async def test_restore_endpoints_need_snapstart() -> None:
    api = RuntimeApi("127.0.0.1")
    client = await RawClient.connect(await api.start())
    status, _, body = await client.request("GET", RESTORE_NEXT)
    assert status == 403
    assert json.loads(body)["errorType"] == "InvalidStateTransition"
    assert not api.ready.done()
    client.close()
    await api.close()


@run_async
async def test_restore_next_is_the_snapshot_point() -> None:
    api = RuntimeApi("127.0.0.1", snapstart=True)
    client = await RawClient.connect(await api.start())
    status, _, _ = await client.request("GET", RESTORE_NEXT)
    assert status == 200  # answered at once: copies run on listeners of their own
    assert api.ready.done()
    status, _, _ = await client.request("POST", RESTORE_NEXT)
    assert status == 405
    client.close()
    await api.close()


@run_async
async def test_restore_error_fails_the_restore() -> None:
    api = RuntimeApi("127.0.0.1", snapstart=True)
    client = await RawClient.connect(await api.start())
    doc = {"errorMessage": "boom", "errorType": "Runtime.AfterRestoreError"}
    headers = {"Lambda-Runtime-Function-Error-Type": "Runtime.AfterRestoreError"}
    status, _, _ = await client.request("POST", RESTORE_ERROR, json.dumps(doc).encode(), headers)
    assert status == 202
    failure = api.init_failed.result()
    assert failure.error_type == "Runtime.AfterRestoreError"
    assert json.loads(failure.body)["errorMessage"] == "boom"
    status, _, _ = await client.request("POST", RESTORE_ERROR, b"{}", headers)
    assert status == 403  # reported once
    client.close()
    await api.close()
