"""Image references in normal form, and how a function's image is resolved and launched."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lambdalite.control.images import ImageFunctions, resolved_uri
from lambdalite.core.errors import InvalidParameterValueException
from lambdalite.images import ImageStore
from lambdalite.images.refs import normalize, parse
from tests.imagekit import File, docker_save, layer


@pytest.mark.parametrize(
    "given, normal",
    [
        ("app", "app:latest"),
        ("app:1", "app:1"),
        ("docker.io/library/app:2", "app:2"),
        ("docker.io/team/app", "team/app:latest"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:v1", None),
    ],
)
def test_normalize(given: str, normal: str | None) -> None:
    assert normalize(given) == (normal or given)


def test_parse_digests_and_refusals() -> None:
    digest = "sha256:" + "a" * 64
    assert parse(digest).digest == digest and parse(digest).name is None
    assert parse(f"repo@{digest}").name == "repo:latest"
    for bad in ("", "Has Space", "repo@sha256:short", "UPPER/case"):
        with pytest.raises(ValueError):
            parse(bad)


def test_resolved_uri() -> None:
    digest = "sha256:" + "b" * 64
    ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com/repo"
    assert resolved_uri(f"{ecr}:v1", digest) == f"{ecr}@{digest}"
    assert resolved_uri("localhost:5000/app", digest) == f"localhost:5000/app@{digest}"
    assert resolved_uri(f"app@{'c' * 10}", digest) == f"app@{digest}"


def test_code_record_and_launch(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    archive = docker_save(
        tmp_path / "a.tar",
        [layer({"bin/run": File(b"x", 0o755)})],
        ["team/app:3"],
        Entrypoint=["/bin/run"],
        Cmd=["mod.fn", "--x"],
        Env=["A=1", "B=two=2"],
    )
    [info] = store.load(archive)
    images = ImageFunctions(store)
    code = asyncio.run(images.code_record("team/app:3"))
    assert code["sha256"] == info.hex and code["size"] == 0
    assert code["resolved_uri"] == f"team/app@{info.digest}"
    launch, handler = images.launch({"PackageType": "Image"}, code)
    assert launch.argv == ("/bin/run", "mod.fn", "--x") and handler == "mod.fn"
    assert launch.workdir == "/" and dict(launch.env) == {"A": "1", "B": "two=2"}
    assert (launch.rootfs / "bin/run").read_bytes() == b"x"
    override = {"ImageConfig": {"EntryPoint": ["/bin/sh", "-c"], "WorkingDirectory": "/srv"}}
    launch, _ = images.launch(override, code)
    assert launch.argv == ("/bin/sh", "-c", "mod.fn", "--x") and launch.workdir == "/srv"
    with pytest.raises(InvalidParameterValueException, match="does not exist"):
        asyncio.run(images.code_record("team/app:4"))
