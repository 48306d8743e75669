"""The image store: both archive formats, whiteouts, sharing, names, and refusals."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from lambdalite.images import ImageError, ImageNotFound, ImageStore
from tests.imagekit import Dir, File, Link, digest, docker_save, layer, oci_layout

BASE = layer(
    {
        "bin": Dir(),
        "bin/tool": File(b"#!/bin/sh\n", 0o755),
        "data": Dir(),
        "data/keep.txt": b"keep",
        "data/gone.txt": b"gone",
        "data/opaque": Dir(),
        "data/opaque/old.txt": b"old",
        "data/link": Link("keep.txt"),
        "bin/tool2": Link("bin/tool", hard=True),
    }
)
TOP = layer(
    {
        "data": Dir(),
        "data/.wh.gone.txt": b"",
        "data/opaque": Dir(),
        "data/opaque/.wh..wh..opq": b"",
        "data/opaque/new.txt": b"new",
        "data/keep.txt": b"kept, changed",
    }
)


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


def test_docker_save_archive_loads_and_merges(store: ImageStore, tmp_path: Path) -> None:
    archive = docker_save(
        tmp_path / "app.tar",
        [BASE, TOP],
        ["app:1"],
        Entrypoint=["/bin/tool"],
        Cmd=["x"],
        Env=["A=1"],
        WorkingDir="/data",
    )
    [info] = store.load(archive)
    assert info.names == ("app:1",)
    assert info.config["Entrypoint"] == ["/bin/tool"] and info.config["WorkingDir"] == "/data"
    assert store.resolve("app:1") == info
    assert store.resolve(f"sha256:{info.hex}") == info
    assert store.resolve(f"some.registry/app@{info.digest}") == info
    root = store.rootfs(info)
    assert (root / "data/keep.txt").read_bytes() == b"kept, changed"
    assert not (root / "data/gone.txt").exists()
    assert sorted(os.listdir(root / "data/opaque")) == ["new.txt"]
    assert os.readlink(root / "data/link") == "keep.txt"
    assert (root / "bin/tool2").read_bytes() == b"#!/bin/sh\n"
    assert os.stat(root / "bin/tool").st_mode & 0o777 == 0o755
    for mountpoint in ("tmp", "proc", "dev"):
        assert (root / mountpoint).is_dir()
    assert (root / "etc/resolv.conf").is_file()
    assert not any(name.startswith(".wh.") for _, _, files in os.walk(root) for name in files)


@pytest.mark.parametrize("archive", [False, True])
def test_oci_layout_and_archive(store: ImageStore, tmp_path: Path, archive: bool) -> None:
    target = tmp_path / ("app.oci.tar" if archive else "layout")
    if not archive:
        target.mkdir()
    manifest = oci_layout(
        target, [BASE, TOP], "registry.example/team/app:2", archive=archive, Cmd=["run"]
    )
    [info] = store.load(target)
    assert info.digest == manifest
    assert info.names == ("registry.example/team/app:2",)
    assert info.size == len(b"#!/bin/sh\nkeepgoneoldnewkept, changed")
    root = store.rootfs(info)
    assert not (root / "data/gone.txt").exists()
    assert (root / "data/opaque/new.txt").read_bytes() == b"new"


def test_layers_are_shared_by_diff_id(store: ImageStore, tmp_path: Path) -> None:
    docker_save(tmp_path / "a.tar", [BASE], ["a"], Cmd=["a"])
    docker_save(tmp_path / "b.tar", [BASE, TOP], ["b"], Cmd=["b"])
    store.load(tmp_path / "a.tar")
    store.load(tmp_path / "b.tar")
    assert sorted(p.name for p in (store.root / "layers").iterdir() if p.is_dir()) == sorted(
        digest(t).split(":")[1] for t in (BASE, TOP)
    )
    assert [i.names for i in store.images()] == [("b:latest",), ("a:latest",)]


def test_a_name_moves_to_the_newer_image(store: ImageStore, tmp_path: Path) -> None:
    docker_save(tmp_path / "1.tar", [BASE], ["app:live"], Cmd=["one"])
    docker_save(tmp_path / "2.tar", [BASE], ["app:live"], Cmd=["two"])
    [first] = store.load(tmp_path / "1.tar")
    [second] = store.load(tmp_path / "2.tar", ("extra/name:v2",))
    assert store.resolve("app:live").config["Cmd"] == ["two"]
    assert store.resolve("docker.io/extra/name:v2").digest == second.digest
    assert store.resolve(first.digest).names == ()


def test_gzip_compressed_archive(store: ImageStore, tmp_path: Path) -> None:
    plain = docker_save(tmp_path / "app.tar", [BASE], ["zipped"], Cmd=["x"])
    packed = tmp_path / "app.tar.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    [info] = store.load(packed)
    assert info.names == ("zipped:latest",)


def test_unknown_image(store: ImageStore) -> None:
    with pytest.raises(ImageNotFound):
        store.resolve("nothing:here")


def _tamper(archive: Path, member_suffix: str, change: bytes | None) -> None:
    """Rewrite ``archive`` with one member's bytes replaced (``None``: truncated)."""
    out = io.BytesIO()
    with tarfile.open(archive) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for member in src:
            data = src.extractfile(member).read() if member.isfile() else b""  # type: ignore[union-attr]
            if member.name.endswith(member_suffix):
                data = data[: len(data) // 2] if change is None else change
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    archive.write_bytes(out.getvalue())


def test_truncated_layer_is_refused(store: ImageStore, tmp_path: Path) -> None:
    archive = docker_save(tmp_path / "app.tar", [BASE, TOP], ["broken"], Cmd=["x"])
    _tamper(archive, digest(TOP).split(":")[1] + "/layer.tar", None)
    with pytest.raises(ImageError, match=r"damaged|does not match"):
        store.load(archive)
    with pytest.raises(ImageNotFound):
        store.resolve("broken")
    assert not (store.root / "layers" / digest(TOP).split(":")[1]).exists()
    assert list((store.root / "tmp").iterdir()) == []


def test_layer_with_wrong_digest_is_refused(store: ImageStore, tmp_path: Path) -> None:
    archive = tmp_path / "app.oci.tar"
    oci_layout(archive, [BASE], "x:1", archive=True, Cmd=["x"])
    packed = gzip.compress(BASE, mtime=0)
    _tamper(archive, digest(packed).split(":")[1], gzip.compress(TOP, mtime=0))
    with pytest.raises(ImageError, match="does not match its digest"):
        store.load(archive)


@pytest.mark.parametrize(
    "entries",
    [
        {"../escape": b"x"},
        {"etc": Link("/etc"), "etc/passwd": b"root::0:0::/:/bin/sh\n"},
        {"a": Dir(), "a/b": Link("../../.."), "a/b/c": b"x"},
        {"x": Link("../../outside", hard=True)},
    ],
)
def test_escapes_are_refused(store: ImageStore, tmp_path: Path, entries: dict) -> None:  # type: ignore[type-arg]
    archive = docker_save(tmp_path / "evil.tar", [layer(entries)], ["evil"], Cmd=["x"])
    with pytest.raises(ImageError, match=r"outside|symlink|refused"):
        store.load(archive)
    assert not (tmp_path / "escape").exists() and not (tmp_path / "c").exists()


def test_size_limit(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images", max_bytes=1000)
    big = layer({"blob": b"x" * 2000})
    archive = docker_save(tmp_path / "big.tar", [big], ["big"], Cmd=["x"])
    with pytest.raises(ImageError, match="larger than the limit of 1000 bytes"):
        store.load(archive)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a tar at all" * 100, "not an image archive"),
        (None, "expected a `docker save` archive"),
    ],
)
def test_not_an_image(
    store: ImageStore, tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "file.tar"
    if content is None:
        with tarfile.open(path, "w") as tar:
            info = tarfile.TarInfo("readme.txt")
            tar.addfile(info, io.BytesIO(b""))
    else:
        path.write_bytes(content)
    with pytest.raises(ImageError, match=message):
        store.load(path)


def test_manifest_with_missing_layer(store: ImageStore, tmp_path: Path) -> None:
    archive = docker_save(tmp_path / "app.tar", [BASE], ["x"], Cmd=["x"])
    out = io.BytesIO()
    with tarfile.open(archive) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for member in src:
            if not member.name.endswith("layer.tar"):
                dst.addfile(member, src.extractfile(member))
    archive.write_bytes(out.getvalue())
    with pytest.raises(ImageError, match="missing from the archive"):
        store.load(archive)
    assert json.loads(json.dumps([])) == []
