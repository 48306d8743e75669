"""CodeStore and zip_directory with real archives built in each test."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import struct
import threading
import zipfile
from pathlib import Path

import pytest

from lambdalite.blobs import CodeInfo, CodeStore, zip_directory
from lambdalite.core.errors import InvalidParameterValueException, RequestEntityTooLargeException

CANNOT_UNZIP = "Could not unzip uploaded file. Please check your file, then try to upload again."
FILE = stat.S_IFREG | 0o644
EXEC = stat.S_IFREG | 0o755
LINK = stat.S_IFLNK | 0o777
DIR = stat.S_IFDIR | 0o755


def make_zip(*entries: tuple[str, bytes | str, int]) -> bytes:
    """A zip of (name, content, unix mode) entries, in the given order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content, mode in entries:
            info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return buffer.getvalue()


def hello_zip() -> bytes:
    return make_zip(
        ("app.py", "def handler(event, context):\n    return event\n", FILE),
        ("bin/", b"", DIR),
        ("bin/tool", "#!/bin/sh\necho hi\n", EXEC),
        ("pkg/data/values.json", '{"a": 1}', FILE),
    )


@pytest.fixture
def store(tmp_path: Path) -> CodeStore:
    return CodeStore(tmp_path / "blobs")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def rejected(store: CodeStore, data: bytes) -> str:
    with pytest.raises(InvalidParameterValueException) as caught:
        store.put_zip(data)
    return caught.value.message


# -- storing -----------------------------------------------------------------------------


def test_put_zip_describes_and_stores_by_hash(store: CodeStore) -> None:
    data = hello_zip()
    info = store.put_zip(data)
    digest = hashlib.sha256(data).digest()
    assert info == CodeInfo(
        sha256_hex=digest.hex(),
        code_sha256_b64=base64.b64encode(digest).decode(),
        size=len(data),
        unzipped_size=len("def handler(event, context):\n    return event\n")
        + len("#!/bin/sh\necho hi\n")
        + len('{"a": 1}'),
    )
    path = store.zip_path(info.sha256_hex)
    assert path == store.root / "zips" / info.sha256_hex[:2] / f"{info.sha256_hex}.zip"
    assert store.read_zip(info.sha256_hex) == data
    assert store.exists(info.sha256_hex)
    assert store.info(info.sha256_hex) == info


def test_put_zip_is_idempotent_and_leaves_no_temporaries(store: CodeStore) -> None:
    data = hello_zip()
    first = store.put_zip(data)
    inode = store.zip_path(first.sha256_hex).stat().st_ino
    assert store.put_zip(data) == first
    assert store.zip_path(first.sha256_hex).stat().st_ino == inode
    leftovers = [p.name for p in store.zip_path(first.sha256_hex).parent.iterdir()]
    assert leftovers == [f"{first.sha256_hex}.zip"]


@pytest.mark.parametrize("bad", ["", "ABC", "g" * 64, "A" * 64, "../" + "a" * 61])
def test_hashes_must_be_lowercase_hex(store: CodeStore, bad: str) -> None:
    with pytest.raises(ValueError):
        store.zip_path(bad)
    with pytest.raises(ValueError):
        store.unpacked(bad)


# -- validation --------------------------------------------------------------------------


def test_not_a_zip_is_rejected_with_the_aws_message(store: CodeStore) -> None:
    assert rejected(store, b"this is not a zip file at all") == CANNOT_UNZIP
    assert rejected(store, b"") == CANNOT_UNZIP
    assert rejected(store, hello_zip()[:-30]) == CANNOT_UNZIP
    assert not (store.root / "zips").exists()


def test_damaged_entry_data_is_rejected(store: CodeStore) -> None:
    payload = os.urandom(4096)  # incompressible, so stored bytes mirror the content
    data = bytearray(make_zip(("blob.bin", payload, FILE)))
    where = bytes(data).find(payload[100:116])
    assert where > 0
    data[where] ^= 0xFF
    assert rejected(store, bytes(data)) == CANNOT_UNZIP


def test_oversized_zip_is_413_with_the_aws_message(store: CodeStore) -> None:
    with pytest.raises(RequestEntityTooLargeException) as caught:
        store.put_zip(bytes(52428800 + 1))
    assert caught.value.message == "Zipped size must be smaller than 52428800 bytes"
    assert caught.value.status == 413


@pytest.fixture(scope="module")
def zero_bomb() -> bytes:
    """About 1 MB that inflates to 251 MiB of zeros."""
    buffer = io.BytesIO()
    chunk = bytes(1 << 20)
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("zeros.bin", "w") as target,
    ):
        for _ in range(251):
            target.write(chunk)
    return buffer.getvalue()


def test_unzipped_size_limit(store: CodeStore, zero_bomb: bytes) -> None:
    assert len(zero_bomb) < 2 << 20
    assert rejected(store, zero_bomb) == "Unzipped size must be smaller than 262144000 bytes"


def test_unzipped_limit_is_a_parameter(tmp_path: Path) -> None:
    data = make_zip(("a.bin", bytes(600), FILE), ("b.bin", bytes(600), FILE))
    small = CodeStore(tmp_path, max_unzipped=1000)
    assert rejected(small, data) == "Unzipped size must be smaller than 1000 bytes"
    roomy = CodeStore(tmp_path)
    assert roomy.put_zip(data).unzipped_size == 1200
    with pytest.raises(InvalidParameterValueException, match="smaller than 1199 bytes"):
        roomy.put_zip(data, max_unzipped=1199)


def _understate_size(data: bytes, claimed: int) -> bytes:
    """Rewrite the uncompressed size in the local and central headers of a one-entry zip."""
    patched = bytearray(data)
    local = patched.find(b"PK\x03\x04")
    central = patched.find(b"PK\x01\x02")
    struct.pack_into("<I", patched, local + 22, claimed)
    struct.pack_into("<I", patched, central + 24, claimed)
    return bytes(patched)


def test_headers_understating_the_size_are_caught(store: CodeStore) -> None:
    liar = _understate_size(make_zip(("big.bin", bytes(1 << 20), FILE)), 10)
    assert rejected(store, liar) == CANNOT_UNZIP


@pytest.mark.parametrize(
    "name", ["../evil.py", "a/../../evil.py", "/etc/cron.d/evil", "\\windows\\evil", "C:/evil"]
)
def test_entries_escaping_the_root_are_rejected(store: CodeStore, name: str) -> None:
    message = rejected(store, make_zip(("ok.py", "x", FILE), (name, "boom", FILE)))
    assert repr(name) in message
    assert message.startswith("Could not unzip uploaded file.")


@pytest.mark.parametrize(
    "entries",
    [
        [("up", "../..", LINK)],
        [("abs", "/etc/passwd", LINK)],
        [("d/", b"", DIR), ("d/up", "..", LINK), ("d/out", "up/../secret", LINK)],
        [("a", "b", LINK), ("b", "c/../..", LINK)],
    ],
    ids=["parent", "absolute", "chained", "through-other-link"],
)
def test_links_leading_outside_are_rejected(
    store: CodeStore, entries: list[tuple[str, str, int]]
) -> None:
    assert "points outside the package" in rejected(store, make_zip(*entries))


def test_link_loops_are_rejected(store: CodeStore) -> None:
    assert "loop" in rejected(store, make_zip(("a", "b", LINK), ("b", "a", LINK)))


@pytest.mark.parametrize(
    "entries",
    [
        [("lib", "real", LINK), ("real/", b"", DIR), ("lib/evil.py", "x", FILE)],
        [("x", "file", FILE), ("x/y", "below a file", FILE)],
        [("x", "file", FILE), ("x/", b"", DIR)],
    ],
    ids=["through-link", "below-file", "file-and-dir"],
)
def test_conflicting_entries_are_rejected(
    store: CodeStore, entries: list[tuple[str, str, int]]
) -> None:
    assert "conflicts with another entry" in rejected(store, make_zip(*entries))


# -- extraction --------------------------------------------------------------------------


def test_unpacked_extracts_read_only_and_keeps_exec_bits(store: CodeStore) -> None:
    info = store.put_zip(hello_zip())
    tree = store.unpacked(info.sha256_hex)
    assert tree == store.root / "code" / info.sha256_hex
    assert (tree / "app.py").read_text().startswith("def handler")
    assert (tree / "pkg/data/values.json").read_text() == '{"a": 1}'
    assert mode_of(tree / "app.py") == 0o444
    assert mode_of(tree / "pkg/data/values.json") == 0o444
    assert mode_of(tree / "bin/tool") == 0o555
    for directory in (tree, tree / "bin", tree / "pkg", tree / "pkg/data"):
        assert mode_of(directory) == 0o555
    assert store.unpacked(info.sha256_hex) == tree
    assert sorted(p.name for p in (store.root / "code").iterdir()) == [info.sha256_hex]


def test_links_inside_the_package_are_kept(store: CodeStore) -> None:
    data = make_zip(
        ("lib/v1/mod.py", "VALUE = 1\n", FILE),
        ("lib/current", "v1", LINK),
        ("top", "lib/current/mod.py", LINK),
    )
    tree = store.unpacked(store.put_zip(data).sha256_hex)
    assert os.readlink(tree / "lib/current") == "v1"
    assert (tree / "top").read_text() == "VALUE = 1\n"


def test_unpacking_a_missing_package_fails(store: CodeStore) -> None:
    with pytest.raises(FileNotFoundError):
        store.unpacked("0" * 64)


def test_failed_extraction_leaves_nothing_behind(store: CodeStore) -> None:
    # A package damaged after upload (here: written straight to disk) never half-appears.
    liar = _understate_size(make_zip(("big.bin", bytes(1 << 20), FILE)), 10)
    sha = hashlib.sha256(liar).hexdigest()
    path = store.zip_path(sha)
    path.parent.mkdir(parents=True)
    path.write_bytes(liar)
    with pytest.raises(zipfile.BadZipFile):
        store.unpacked(sha)
    assert list((store.root / "code").iterdir()) == []


def test_concurrent_unpacking_yields_one_complete_tree(tmp_path: Path) -> None:
    files = [(f"m{i}.py", f"N = {i}\n" * 2000, FILE) for i in range(40)]
    writer = CodeStore(tmp_path)
    sha = writer.put_zip(make_zip(*files)).sha256_hex
    # Two stores on one root stand in for two processes: their locks are independent.
    stores = [writer, CodeStore(tmp_path)]
    barrier = threading.Barrier(8)
    results: list[Path | BaseException] = []

    def unpack(index: int) -> None:
        barrier.wait()
        try:
            results.append(stores[index % 2].unpacked(sha))
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=unpack, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [tmp_path / "code" / sha] * 8
    assert sorted(p.name for p in (tmp_path / "code").iterdir()) == [sha]
    tree = tmp_path / "code" / sha
    assert sorted(p.name for p in tree.iterdir()) == sorted(name for name, _, _ in files)
    assert (tree / "m39.py").read_text() == "N = 39\n" * 2000


def test_delete_removes_zip_and_read_only_tree(store: CodeStore) -> None:
    sha = store.put_zip(hello_zip()).sha256_hex
    store.unpacked(sha)
    assert store.delete(sha) is True
    assert not store.exists(sha)
    assert list((store.root / "code").iterdir()) == []
    assert store.delete(sha) is False
    with pytest.raises(FileNotFoundError):
        store.unpacked(sha)


# -- building zips -----------------------------------------------------------------------


def _sample_tree(root: Path) -> Path:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "app.py").write_text("def handler(e, c):\n    return 1\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "sub" / "data.txt").write_text("data")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    os.symlink("pkg/sub/data.txt", root / "alias.txt")
    return root


def test_zip_directory_is_deterministic(tmp_path: Path) -> None:
    root = _sample_tree(tmp_path / "src")
    first = zip_directory(root)
    os.utime(root / "app.py", (1, 1))
    assert zip_directory(root) == first
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert names == [
        "alias.txt",
        "app.py",
        "empty/",
        "pkg/",
        "pkg/__init__.py",
        "pkg/sub/",
        "pkg/sub/data.txt",
        "run.sh",
    ]


def test_zip_directory_round_trips_through_the_store(tmp_path: Path) -> None:
    root = _sample_tree(tmp_path / "src")
    outside = tmp_path / "shared.txt"
    outside.write_text("from elsewhere")
    os.symlink(outside, root / "shared.txt")
    store = CodeStore(tmp_path / "blobs")
    tree = store.unpacked(store.put_zip(zip_directory(root)).sha256_hex)
    assert (tree / "app.py").read_text() == (root / "app.py").read_text()
    assert mode_of(tree / "run.sh") == 0o555
    assert mode_of(tree / "app.py") == 0o444
    assert (tree / "empty").is_dir()
    assert os.readlink(tree / "alias.txt") == "pkg/sub/data.txt"
    assert (tree / "alias.txt").read_text() == "data"
    # A link leaving the directory is packed as the file it points to.
    assert not (tree / "shared.txt").is_symlink()
    assert (tree / "shared.txt").read_text() == "from elsewhere"


def test_zip_directory_needs_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        zip_directory(tmp_path / "file")
