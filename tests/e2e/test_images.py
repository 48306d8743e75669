"""Container image functions end to end: images built here, loaded through the CLI and the
server's endpoint, created and invoked with boto3, running as the sandbox's root.

Three images: a ``docker save`` archive of a minimal root holding one static binary (a Runtime
API client in C), an OCI archive of several gzip layers whose upper layers delete a file and
make a directory opaque, and an image built the way AWS documents for Python (the
interpreter, its standard library and ``awslambdaric``, ``ENTRYPOINT ["/usr/local/bin/python",
"-m", "awslambdaric"]``, ``CMD ["app.handler"]``). Running images needs namespace sandboxes
(root); the process backend's refusal is tested without.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import awslambdaric
import httpx
import pytest
import runtime_client
import simplejson
import snapshot_restore_py
from botocore.exceptions import ClientError

from tests.e2e.harness import ServerProcess
from tests.imagekit import (
    Dir,
    File,
    Link,
    docker_save,
    layer,
    oci_layout,
    rewrite_member,
    static_bootstrap,
    tree_layer,
)

ROLE = "arn:aws:iam::000000000000:role/r"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="images run in namespace sandboxes")


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lambdalite", *args, "--endpoint-url", server.endpoint],
        capture_output=True,
        text=True,
        timeout=300,
    )


def invoke(lam: Any, name: str, payload: dict[str, Any]) -> dict[str, Any]:
    response = lam.invoke(FunctionName=name, Payload=json.dumps(payload).encode())
    body: dict[str, Any] = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, body
    return body


@pytest.fixture(scope="module")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return static_bootstrap(tmp_path_factory.mktemp("bootstrap"))


def base_entries(bootstrap: bytes) -> dict[str, Any]:
    return {
        "usr": Dir(),
        "usr/local": Dir(),
        "usr/local/bin": Dir(),
        "usr/local/bin/bootstrap": File(bootstrap, 0o755),
        "var": Dir(),
        "var/task": Dir(),
        "var/task/app.txt": b"app",
    }


RUN = {
    "Entrypoint": ["/usr/local/bin/bootstrap"],
    "Cmd": ["app.handler"],
    "WorkingDir": "/var/task",
    "Env": [
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "GREETING=hello from the image",
        "PROBE=/var/task/app.txt:/etc/hosts:/usr/bin/python3",
    ],
}


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory, bootstrap: bytes) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("archives")
    base = layer(base_entries(bootstrap))
    out = {"docker": docker_save(folder / "app.tar", [base], ["bootstrap-app:1"], **RUN)}
    lower = layer(
        {
            **base_entries(bootstrap),
            "data": Dir(),
            "data/keep.txt": b"keep",
            "data/gone.txt": b"gone",
            "data/opaque": Dir(),
            "data/opaque/old.txt": b"old",
        }
    )
    middle = layer({"data": Dir(), "data/.wh.gone.txt": b"", "data/extra.txt": b"x"})
    upper = layer(
        {
            "data": Dir(),
            "data/opaque": Dir(),
            "data/opaque/.wh..wh..opq": b"",
            "data/opaque/new": b"",
        }
    )
    probe = "/data/keep.txt:/data/gone.txt:/data/extra.txt:/data/opaque/old.txt:/data/opaque/new"
    oci_run = {**RUN, "Env": ["GREETING=oci", f"PROBE={probe}"]}
    out["oci"] = folder / "layers.oci.tar"
    oci_layout(out["oci"], [lower, middle, upper], "layered/app:v2", archive=True, **oci_run)
    # Images of their own (a layer already in the store would not be read again).
    for kind in ("corrupt", "truncated"):
        extra = layer({**base_entries(bootstrap), f"var/task/{kind}.txt": kind.encode()})
        out[kind] = docker_save(folder / f"{kind}.tar", [extra], [f"{kind}:1"], **RUN)

    def corrupt(data: bytes) -> bytes:
        return data[:4000] + b"corrupted!" + data[4010:]

    rewrite_member(out["corrupt"], "layer.tar", corrupt)
    rewrite_member(out["truncated"], "layer.tar", lambda data: data[: len(data) // 2])
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("server"), None, keep_alive=30).start()
    yield proc
    assert proc.stop() == 0, proc.output()


@pytest.fixture(scope="module")
def lam(server: ServerProcess) -> Any:
    return server.client("lambda")


@pytest.fixture(scope="module")
def loaded(server: ServerProcess, archives: dict[str, Path]) -> dict[str, str]:
    """Digests of the images, loaded with ``lambdalite images load``."""
    digests = {}
    for kind in ("docker", "oci"):
        done = cli(server, "images", "load", str(archives[kind]))
        assert done.returncode == 0, done.stderr
        digests[kind] = re.search(r"sha256:[0-9a-f]{64}", done.stdout).group(0)  # type: ignore[union-attr]
    return digests


def test_images_ls_lists_loaded_images(server: ServerProcess, loaded: dict[str, str]) -> None:
    done = cli(server, "images", "ls")
    assert done.returncode == 0, done.stderr
    assert "bootstrap-app:1" in done.stdout and "layered/app:v2" in done.stdout
    listed = json.loads(cli(server, "images", "ls", "--json").stdout)
    assert {i["digest"] for i in listed} >= set(loaded.values())


def test_broken_archive_is_refused_clearly(
    server: ServerProcess, archives: dict[str, Path]
) -> None:
    done = cli(server, "images", "load", str(archives["corrupt"]))
    assert done.returncode != 0
    assert "does not match diff-id" in done.stderr and "layer sha256:" in done.stderr
    done = cli(server, "images", "load", str(archives["truncated"]))
    assert done.returncode != 0
    assert "is damaged (not a complete tar archive)" in done.stderr
    assert "corrupt:1" not in cli(server, "images", "ls").stdout
    response = httpx.post(f"{server.endpoint}/_lambdalite/images", content=b"garbage" * 100)
    assert response.status_code == 400
    assert "not an image archive" in response.json()["message"]


def test_unknown_and_invalid_images_at_create(lam: Any, name: str) -> None:
    cases = [
        ({"Code": {"ImageUri": "nothing/here:1"}}, "Source image nothing/here:1 does not exist"),
        ({"Code": {"ImageUri": "Not A Name"}}, "is not valid. Provide a valid source image."),
        (
            {"Code": {"ImageUri": "bootstrap-app:1"}, "Runtime": "python3.11"},
            "Please don't provide Handler or Runtime or Layer",
        ),
    ]
    for extra, message in cases:
        with pytest.raises(ClientError) as info:
            lam.create_function(FunctionName=name, Role=ROLE, PackageType="Image", **extra)
        assert info.value.response["Error"]["Code"] == "InvalidParameterValueException"
        assert message in info.value.response["Error"]["Message"]


@needs_root
def test_docker_save_image_runs_as_root_file_system(
    lam: Any, name: str, loaded: dict[str, str]
) -> None:
    created = lam.create_function(
        FunctionName=name,
        Role=ROLE,
        PackageType="Image",
        Code={"ImageUri": "bootstrap-app:1"},
        Environment={"Variables": {"STAGE": "test"}},
    )
    digest_hex = loaded["docker"].split(":")[1]
    assert created["PackageType"] == "Image" and created["CodeSha256"] == digest_hex
    assert "Runtime" not in created and "Handler" not in created
    got = lam.get_function(FunctionName=name)
    assert got["Code"]["RepositoryType"] == "ECR"
    assert got["Code"]["ImageUri"] == "bootstrap-app:1"
    assert got["Code"]["ResolvedImageUri"] == f"bootstrap-app@{loaded['docker']}"
    body = invoke(lam, name, {"hello": "image"})
    assert body["event"] == {"hello": "image"}
    assert body["argv"] == ["/usr/local/bin/bootstrap", "app.handler"]
    assert body["cwd"] == "/var/task" and body["handler"] == "app.handler"
    assert body["greeting"] == "hello from the image" and body["stage"] == "test"
    assert body["task_root"] == "/var/task"
    # The image is the whole root: its files are there, the host's /usr is not.
    assert body["files"] == {
        "/var/task/app.txt": True,
        "/etc/hosts": True,
        "/usr/bin/python3": False,
    }
    assert body["root_writable"] is False and body["tmp_writable"] is True
    assert body["uid"] != 0


@needs_root
def test_image_config_overrides_and_updates(lam: Any, name: str, loaded: dict[str, str]) -> None:
    lam.create_function(
        FunctionName=name,
        Role=ROLE,
        PackageType="Image",
        Code={"ImageUri": f"bootstrap-app@{loaded['docker']}"},
        ImageConfig={
            "EntryPoint": ["/usr/local/bin/bootstrap", "--from-config"],
            "Command": ["other.handler"],
            "WorkingDirectory": "/tmp",
        },
    )
    config = lam.get_function_configuration(FunctionName=name)
    assert config["ImageConfigResponse"]["ImageConfig"]["Command"] == ["other.handler"]
    body = invoke(lam, name, {})
    assert body["argv"] == ["/usr/local/bin/bootstrap", "--from-config", "other.handler"]
    assert body["cwd"] == "/tmp" and body["handler"] == "other.handler"
    lam.update_function_configuration(
        FunctionName=name,
        ImageConfig={"Command": ["third.handler"]},
        Environment={"Variables": {"GREETING": "the function's own"}},
    )
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    body = invoke(lam, name, {})
    assert body["argv"] == ["/usr/local/bin/bootstrap", "third.handler"]
    assert body["cwd"] == "/var/task" and body["greeting"] == "the function's own"
    with pytest.raises(ClientError, match="Please don't provide Handler or Runtime or Layer"):
        lam.update_function_configuration(FunctionName=name, Handler="app.handler")
    with pytest.raises(ClientError, match="Please provide ImageUri when updating"):
        lam.update_function_code(FunctionName=name, ZipFile=b"PK\x05\x06" + b"\0" * 18)
    # A new image: new digest, new environments.
    updated = lam.update_function_code(FunctionName=name, ImageUri="layered/app:v2")
    assert updated["CodeSha256"] == loaded["oci"].split(":")[1]
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    assert invoke(lam, name, {})["files"]["/data/keep.txt"] is True
    version = lam.publish_version(FunctionName=name)
    assert version["CodeSha256"] == loaded["oci"].split(":")[1]


@needs_root
def test_oci_layers_apply_whiteouts(lam: Any, name: str, loaded: dict[str, str]) -> None:
    lam.create_function(
        FunctionName=name, Role=ROLE, PackageType="Image", Code={"ImageUri": "layered/app:v2"}
    )
    body = invoke(lam, name, {"n": 1})
    assert body["files"] == {
        "/data/keep.txt": True,
        "/data/gone.txt": False,
        "/data/extra.txt": True,
        "/data/opaque/old.txt": False,
        "/data/opaque/new": True,
    }
    assert body["greeting"] == "oci" and body["event"] == {"n": 1}


# -- the image AWS documents for Python -------------------------------------------------------
APP = """
import os

def handler(event, context):
    return {"ric": type(context).__module__, "event": event, "cwd": os.getcwd(),
            "greeting": os.environ.get("GREETING"), "request_id": context.aws_request_id}
"""


def _libraries(binaries: list[Path]) -> set[Path]:
    found: set[Path] = set()
    for binary in binaries:
        done = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
        for match in re.finditer(r"(/\S+\.so[\w.]*)", done.stdout):
            found.add(Path(match.group(1)))
    return found


def python_image(folder: Path) -> Path:
    """A docker-save archive of an image that runs awslambdaric with this interpreter."""
    prefix = Path(sys.base_prefix)
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    stdlib = Path(sysconfig.get_paths(vars={"installed_base": str(prefix)})["stdlib"])
    executable = prefix / "bin" / version
    shared = sorted(prefix.glob("lib/libpython*.so*"))
    dynload = sorted((stdlib / "lib-dynload").glob("*.so"))
    natives = [executable, *shared, *dynload, Path(runtime_client.__file__ or "")]
    system = {
        f"lib/x86_64-linux-gnu/{p.name}": File(p.read_bytes(), 0o755)
        for p in _libraries(natives)
        if not str(p).startswith(str(prefix)) and "ld-linux" not in p.name
    }
    loader = next(p for p in _libraries([executable]) if "ld-linux" in p.name)
    userland = layer(
        {
            "lib": Dir(),
            "lib/x86_64-linux-gnu": Dir(),
            **system,
            "lib64": Dir(),
            f"lib64/{loader.name}": File(loader.resolve().read_bytes(), 0o755),
            "usr": Dir(),
            "usr/local": Dir(),
            "usr/local/bin": Dir(),
            f"usr/local/bin/{version}": File(executable.read_bytes(), 0o755),
            "usr/local/lib": Dir(),
            **{f"usr/local/lib/{p.name}": File(p.read_bytes(), 0o755) for p in shared},
        }
    )
    skip = ("test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages")
    skip += tuple(p.name for p in stdlib.glob("config-*"))
    library = tree_layer(stdlib, f"usr/local/lib/{version}", skip)
    code: dict[str, Any] = {"var": Dir(), "var/task": Dir(), "var/task/app.py": APP.encode()}
    code_layers = [layer(code)]
    for module in (awslambdaric, simplejson, runtime_client, snapshot_restore_py):
        path = Path(module.__file__ or "")
        source = path.parent if path.name == "__init__.py" else path
        code_layers.append(tree_layer(source, f"var/task/{source.name}"))
    python_link = layer({"usr/local/bin/python": Link(version)})
    return docker_save(
        folder / "python.tar",
        [userland, library, python_link, *code_layers],
        ["lambda-python:latest"],
        Entrypoint=["/usr/local/bin/python", "-m", "awslambdaric"],
        Cmd=["app.handler"],
        WorkingDir="/var/task",
        Env=[
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "LD_LIBRARY_PATH=/usr/local/lib",
            "LANG=C.UTF-8",
            "GREETING=from a python image",
        ],
    )


@needs_root
def test_python_image_with_awslambdaric(
    server: ServerProcess, lam: Any, name: str, tmp_path: Path
) -> None:
    archive = python_image(tmp_path)
    done = cli(server, "images", "load", str(archive))
    assert done.returncode == 0, done.stderr
    lam.create_function(
        FunctionName=name,
        Role=ROLE,
        PackageType="Image",
        Code={"ImageUri": "lambda-python"},
        MemorySize=256,
        Timeout=30,
    )
    body = invoke(lam, name, {"from": "boto3"})
    assert body["ric"].startswith("awslambdaric"), body
    assert body["event"] == {"from": "boto3"} and body["cwd"] == "/var/task"
    assert body["greeting"] == "from a python image"
    assert invoke(lam, name, {"again": True})["event"] == {"again": True}  # warm


def test_process_backend_refuses_images(
    tmp_path: Path, archives: dict[str, Path], name: str
) -> None:
    proc = ServerProcess(tmp_path / "process", None, sandbox="process").start()
    try:
        done = cli(proc, "images", "load", str(archives["docker"]))
        assert done.returncode == 0, done.stderr
        lam = proc.client("lambda")
        lam.create_function(
            FunctionName=name, Role=ROLE, PackageType="Image", Code={"ImageUri": "bootstrap-app:1"}
        )
        response = lam.invoke(FunctionName=name, Payload=b"{}")
        body = json.loads(response["Payload"].read())
        assert response["FunctionError"] == "Unhandled"
        assert body["errorType"] == "Runtime.InvalidEntrypoint"
        assert "need namespace sandboxes" in body["errorMessage"]
    finally:
        assert proc.stop() == 0, proc.output()


@needs_root
def test_isolated_network_mode(tmp_path: Path, archives: dict[str, Path], name: str) -> None:
    """With a network namespace of its own the image reaches the Runtime API at 127.0.0.1:9001."""
    proc = ServerProcess(tmp_path / "isolated", None, network_mode="isolated").start()
    try:
        assert cli(proc, "images", "load", str(archives["oci"])).returncode == 0
        lam = proc.client("lambda")
        lam.create_function(
            FunctionName=name, Role=ROLE, PackageType="Image", Code={"ImageUri": "layered/app:v2"}
        )
        body = invoke(lam, name, {"isolated": True})
        assert body["event"] == {"isolated": True} and body["files"]["/data/gone.txt"] is False
    finally:
        assert proc.stop() == 0, proc.output()
