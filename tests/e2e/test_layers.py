"""Layers through unmodified boto3: the layer API, functions using layers, and the limits."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lambdalite.runtimes.registry import NODE_RUNTIMES, RuntimeRegistry
from tests.e2e.harness import ROLE, ServerProcess, create, zip_files
from tests.unit.sandbox.conftest import require_namespaces

LAYER_ARN = "arn:aws:lambda:us-east-1:000000000000:layer:"

HANDLER = """
import os
import subprocess

import shared


def handler(event, context):
    tool = subprocess.run(["layer-tool"], capture_output=True, text=True, check=True)
    return {
        "shared": shared.WHO,
        "winner": shared.winner(),
        "tool": tool.stdout.strip(),
        "path": os.environ["PATH"],
        "file": shared.__file__,
        "opt": sorted(os.listdir("/opt")) if os.path.isdir("/opt") else [],
    }
"""


def layer_name() -> str:
    return f"layer-{uuid.uuid4().hex[:10]}"


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = exc.value.response["Error"]
    return err["Code"], err["Message"]


def zeros_zip(name: str, size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, bytes(size))
    return buf.getvalue()


def layer_zip(files: dict[str, str | bytes]) -> bytes:
    """Like ``zip_files``, with files under ``bin/`` executable (the zip keeps the mode)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if name.startswith("bin/") else 0o644) << 16
            zf.writestr(info, content)
    return buf.getvalue()


def publish(lam: Any, name: str, files: dict[str, str | bytes], **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = lam.publish_layer_version(
        LayerName=name, Content={"ZipFile": layer_zip(files)}, **extra
    )
    return result


def test_layer_api(lam: Any) -> None:
    name = layer_name()
    content = layer_zip({"python/mod.py": "X = 1\n"})
    first = lam.publish_layer_version(
        LayerName=name,
        Description="first",
        Content={"ZipFile": content},
        CompatibleRuntimes=["python3.11", "python3.12"],
        CompatibleArchitectures=["x86_64"],
        LicenseInfo="MIT",
    )
    assert first["LayerArn"] == LAYER_ARN + name
    assert first["LayerVersionArn"] == f"{LAYER_ARN}{name}:1"
    assert first["Version"] == 1
    assert first["Description"] == "first"
    assert first["LicenseInfo"] == "MIT"
    assert first["Content"]["CodeSize"] == len(content)
    digest = base64.b64encode(hashlib.sha256(content).digest()).decode()
    assert first["Content"]["CodeSha256"] == digest
    second = publish(lam, name, {"nodejs/x.js": "1"}, CompatibleRuntimes=["nodejs20.x"])
    third = publish(lam, name, {"a": "b"}, CompatibleArchitectures=["arm64"])
    assert (second["Version"], third["Version"]) == (2, 3)

    got = lam.get_layer_version(LayerName=name, VersionNumber=1)
    assert got["LayerVersionArn"] == first["LayerVersionArn"]
    assert got["CompatibleRuntimes"] == ["python3.11", "python3.12"]
    by_arn = lam.get_layer_version_by_arn(Arn=f"{LAYER_ARN}{name}:2")
    assert by_arn["Version"] == 2
    assert by_arn["CompatibleRuntimes"] == ["nodejs20.x"]

    versions = lam.list_layer_versions(LayerName=name)["LayerVersions"]
    assert [v["Version"] for v in versions] == [3, 2, 1]
    python = lam.list_layer_versions(LayerName=name, CompatibleRuntime="python3.12")
    assert [v["Version"] for v in python["LayerVersions"]] == [1]
    arm = lam.list_layer_versions(LayerName=name, CompatibleArchitecture="arm64")
    assert [v["Version"] for v in arm["LayerVersions"]] == [3]

    page = lam.list_layer_versions(LayerName=name, MaxItems=2)
    assert [v["Version"] for v in page["LayerVersions"]] == [3, 2]
    rest = lam.list_layer_versions(LayerName=name, MaxItems=2, Marker=page["NextMarker"])
    assert [v["Version"] for v in rest["LayerVersions"]] == [1]
    assert "NextMarker" not in rest
    pages = lam.get_paginator("list_layer_versions").paginate(
        LayerName=name, PaginationConfig={"PageSize": 1}
    )
    assert [v["Version"] for p in pages for v in p["LayerVersions"]] == [3, 2, 1]

    listed = {x["LayerName"]: x for x in lam.list_layers()["Layers"]}
    assert listed[name]["LayerArn"] == LAYER_ARN + name
    assert listed[name]["LatestMatchingVersion"]["Version"] == 3
    filtered = {
        x["LayerName"]: x for x in lam.list_layers(CompatibleRuntime="python3.11")["Layers"]
    }
    assert filtered[name]["LatestMatchingVersion"]["Version"] == 1
    every = [
        x["LayerName"]
        for p in lam.get_paginator("list_layers").paginate(PaginationConfig={"PageSize": 1})
        for x in p["Layers"]
    ]
    assert name in every and len(every) == len(set(every))

    lam.delete_layer_version(LayerName=name, VersionNumber=3)
    lam.delete_layer_version(LayerName=name, VersionNumber=3)  # already gone: still fine
    with pytest.raises(ClientError) as missing:
        lam.get_layer_version(LayerName=name, VersionNumber=3)
    assert error_code(missing)[0] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as missing_arn:
        lam.get_layer_version_by_arn(Arn=f"{LAYER_ARN}{name}:3")
    assert error_code(missing_arn)[0] == "ResourceNotFoundException"
    # Version numbers are never reused after a delete.
    assert publish(lam, name, {"a": "c"})["Version"] == 4


def test_bad_layer_zip_and_name_shared_with_a_function(lam: Any) -> None:
    name = layer_name()
    with pytest.raises(ClientError) as traversal:
        publish(lam, name, {"../escape.txt": "x"})
    assert error_code(traversal)[0] == "InvalidParameterValueException"
    publish(lam, name, {"python/a.py": ""})
    create(lam, name)
    lam.delete_function(FunctionName=name)
    assert lam.get_layer_version(LayerName=name, VersionNumber=1)["Version"] == 1


def test_function_layer_limits(lam: Any, name: str) -> None:
    layer = layer_name()
    arns = [publish(lam, layer, {f"f{i}": "x"})["LayerVersionArn"] for i in range(6)]
    with pytest.raises(ClientError) as six:
        create(lam, name, Layers=arns)
    assert error_code(six)[0] == "InvalidParameterValueException"
    missing = f"{LAYER_ARN}{layer}:99"
    with pytest.raises(ClientError) as absent:
        create(lam, name, Layers=[arns[0], missing])
    assert error_code(absent) == (
        "InvalidParameterValueException",
        f"Layer version {missing} does not exist.",
    )
    created = create(lam, name, Layers=arns[:2])
    sizes = [lam.get_layer_version_by_arn(Arn=a)["Content"]["CodeSize"] for a in arns[:2]]
    assert created["Layers"] == [
        {"Arn": a, "CodeSize": s} for a, s in zip(arns[:2], sizes, strict=True)
    ]
    with pytest.raises(ClientError) as bad_update:
        lam.update_function_configuration(FunctionName=name, Layers=[missing])
    assert error_code(bad_update)[0] == "InvalidParameterValueException"
    updated = lam.update_function_configuration(FunctionName=name, Layers=[arns[5]])
    assert [x["Arn"] for x in updated["Layers"]] == [arns[5]]
    cleared = lam.update_function_configuration(FunctionName=name, Layers=[])
    assert not cleared.get("Layers")

    big = layer_name()
    huge = [
        lam.publish_layer_version(
            LayerName=big, Content={"ZipFile": zeros_zip(f"blob{i}", 130 * 1024 * 1024)}
        )["LayerVersionArn"]
        for i in range(2)
    ]
    with pytest.raises(ClientError) as oversized:
        lam.update_function_configuration(FunctionName=name, Layers=huge)
    code, message = error_code(oversized)
    assert code == "InvalidParameterValueException"
    assert "exceeds the maximum allowed size of 262144000 bytes" in message


@pytest.fixture(scope="module", params=["namespace", "process"])
def sandboxed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, str]]:
    """SQLite servers with each sandbox backend: /opt is a mount in one, host paths in the
    other."""
    if request.param == "namespace":
        require_namespaces()
    server = ServerProcess(tmp_path_factory.mktemp("layers"), sandbox=request.param).start()
    yield server.client("lambda"), request.param
    assert server.stop() == 0, server.output()


def test_function_sees_layers_in_order(sandboxed: tuple[Any, str]) -> None:
    lam, backend = sandboxed
    name = f"fn-{uuid.uuid4().hex[:10]}"
    base = publish(
        lam,
        layer_name(),
        {
            "python/shared.py": "WHO = 'base'\ndef winner():\n    import winner\n"
            "    return winner.VALUE\n",
            "python/winner.py": "VALUE = 'base'\n",
            "bin/layer-tool": "#!/bin/sh\necho tool-from-layer\n",
        },
    )["LayerVersionArn"]
    override = publish(lam, layer_name(), {"python/winner.py": "VALUE = 'override'\n"})
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": zip_files({"app.py": HANDLER})},
        Layers=[base, override["LayerVersionArn"]],
    )
    result = lam.invoke(FunctionName=name, Payload=b"{}")
    body = json.loads(result["Payload"].read())
    assert "FunctionError" not in result, body
    assert body["shared"] == "base"
    assert body["winner"] == "override"
    assert body["tool"] == "tool-from-layer"
    if backend == "namespace":
        assert body["file"] == "/opt/python/shared.py"
        assert body["opt"] == ["bin", "python"]
        assert body["path"].split(":")[-1] == "/opt/bin"
    else:
        assert body["file"].endswith("/python/shared.py")
        assert body["path"].split(":")[-1].endswith("/bin")


NODE_INSTALLED = [r for r in NODE_RUNTIMES if r in RuntimeRegistry().available()]


@pytest.mark.skipif(not NODE_INSTALLED, reason="no Node.js 18, 20 or 22 on this host")
def test_node_function_requires_a_layer_module(sandboxed: tuple[Any, str]) -> None:
    lam, _backend = sandboxed
    name = f"fn-{uuid.uuid4().hex[:10]}"
    layer = publish(
        lam,
        layer_name(),
        {"nodejs/node_modules/greeting/index.js": "exports.greet = (who) => `hi ${who}`;\n"},
    )
    lam.create_function(
        FunctionName=name,
        Runtime=NODE_INSTALLED[-1],
        Role=ROLE,
        Handler="index.handler",
        Code={
            "ZipFile": zip_files(
                {
                    "index.js": "const { greet } = require('greeting');\n"
                    "exports.handler = async () => greet('layer');\n"
                }
            )
        },
        Layers=[layer["LayerVersionArn"]],
    )
    result = lam.invoke(FunctionName=name, Payload=b"{}")
    body = json.loads(result["Payload"].read())
    assert "FunctionError" not in result, body
    assert body == "hi layer"
