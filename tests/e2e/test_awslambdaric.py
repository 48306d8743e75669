"""Unmodified awslambdaric (AWS's own Python runtime client) runs against our Runtime API.

The function uses AWS_LAMBDA_EXEC_WRAPPER, as on AWS, to start ``python -m awslambdaric``
instead of lambdalite's own runtime client. As on AWS, the function ships awslambdaric (and
its dependencies) in its package and runs it with the runtime's interpreter, which the
wrapper receives as its first argument: an execution environment sees only its own code and
the runtime, not the server's virtual environment.
"""

from __future__ import annotations

import base64
import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import awslambdaric
import runtime_client
import simplejson
import snapshot_restore_py

APP = """
import os

def handler(event, context):
    if event.get("fail"):
        raise RuntimeError("ric failure")
    return {"ric": True, "event": event, "request_id": context.aws_request_id,
            "client": type(context).__module__, "remaining": context.get_remaining_time_in_millis()}
"""
WRAPPER = '#!/bin/sh\nexec "$1" -m awslambdaric "$_HANDLER"\n'
# The C extension in awslambdaric is built for this interpreter's version.
RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"


def _add_tree(zf: zipfile.ZipFile, path: Path) -> None:
    """Add a module file or package directory under its own name."""
    root = path.parent
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if "__pycache__" not in file.parts:
            zf.write(file, str(file.relative_to(root)))


def package() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", APP)
        info = zipfile.ZipInfo("ric-wrapper")
        info.external_attr = 0o755 << 16
        zf.writestr(info, WRAPPER)
        for module in (awslambdaric, simplejson):
            _add_tree(zf, Path(module.__file__ or "").parent)
        for module in (runtime_client, snapshot_restore_py):
            _add_tree(zf, Path(module.__file__ or ""))
    return buf.getvalue()


def test_awslambdaric_runs_unmodified(lam: Any, name: str) -> None:
    lam.create_function(
        FunctionName=name,
        Runtime=RUNTIME,
        Handler="app.handler",
        Role="arn:aws:iam::000000000000:role/r",
        Code={"ZipFile": package()},
        Environment={"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": "/var/task/ric-wrapper"}},
    )
    config = lam.get_function_configuration(FunctionName=name)
    assert config["State"] == "Active"
    response = lam.invoke(FunctionName=name, Payload=b'{"a": 1}', LogType="Tail")
    body = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, body
    assert body["ric"] is True and body["event"] == {"a": 1}
    assert body["request_id"] == response["ResponseMetadata"]["RequestId"]
    assert body["client"].startswith("awslambdaric")
    assert body["remaining"] > 0
    tail = base64.b64decode(response["LogResult"]).decode()
    assert "REPORT RequestId" in tail
    failed = lam.invoke(FunctionName=name, Payload=b'{"fail": true}')
    error = json.loads(failed["Payload"].read())
    assert failed["FunctionError"] == "Unhandled"
    assert error["errorType"] == "RuntimeError" and error["errorMessage"] == "ric failure"
