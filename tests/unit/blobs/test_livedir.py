"""DirectoryWatcher on a real file system, with inotify and with the polling fallback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lambdalite.blobs.livedir import DirectoryWatcher, entries, listing


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = (tmp_path / "code").resolve()
    root.mkdir()
    (root / "app.py").write_text("x = 1\n")
    return root


@pytest.fixture(params=["inotify", "poll"])
def watcher(request: pytest.FixtureRequest, tree: Path) -> DirectoryWatcher:
    watcher = DirectoryWatcher(use_inotify=request.param == "inotify")
    if request.param == "inotify" and watcher.fileno < 0:
        pytest.skip("inotify is not available here")
    watcher.watch(tree)
    request.addfinalizer(watcher.close)
    return watcher


def changes(watcher: DirectoryWatcher) -> set[Path]:
    return watcher.changed() | watcher.poll()


def test_quiet_tree_reports_nothing(watcher: DirectoryWatcher) -> None:
    assert changes(watcher) == set()
    assert changes(watcher) == set()


def test_edits_creations_renames_and_deletions(watcher: DirectoryWatcher, tree: Path) -> None:
    (tree / "app.py").write_text("x = 2\n")  # same size: the time still differs
    os.utime(tree / "app.py", ns=(1, 10**18))
    assert changes(watcher) == {tree}
    (tree / "pkg" / "deep").mkdir(parents=True)
    (tree / "pkg" / "deep" / "mod.py").write_text("y = 1\n")
    assert changes(watcher) == {tree}
    (tree / "pkg" / "deep" / "mod.py").write_text("y = 22\n")  # inside a new directory
    assert changes(watcher) == {tree}
    os.rename(tree / "app.py", tree / "main.py")
    assert changes(watcher) == {tree}
    (tree / "main.py").unlink()
    assert changes(watcher) == {tree}
    assert changes(watcher) == set()


def test_bytecode_caches_are_ignored(watcher: DirectoryWatcher, tree: Path) -> None:
    (tree / "__pycache__").mkdir()
    (tree / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0" * 16)
    (tree / "stray.pyc").write_bytes(b"\0")
    assert changes(watcher) == set()


def test_listing_follows_names_sizes_and_times(tree: Path) -> None:
    before = listing(tree)
    assert before.files == 1 and before.total_bytes == len("x = 1\n")
    assert set(entries(tree)) == {"app.py"}
    (tree / "more.txt").write_text("abc")
    after = listing(tree)
    assert after.sha256 != before.sha256
    assert (after.files, after.total_bytes) == (2, before.total_bytes + 3)
