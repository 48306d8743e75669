"""Mount trees: host directories cloned by the server and attached inside a pivoted root."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import pytest

from lambdalite.sandbox import mounttree, rootsteps

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not mounttree.available(), reason="needs root and open_tree"
)


def test_binds_become_attach_steps_with_one_tree_each(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    single = tmp_path / "file"
    single.write_text("x")
    ops = [
        ("file", "/etc/passwd", b"", 0o644),
        ("bind", "/var/task", str(code), True, 0),
        ("bind", "/opt/one", str(single), False, 2),
        ("tmpfs", "/tmp", 6, "size=1m"),
    ]
    out, trees = mounttree.detach_binds(ops)
    try:
        assert out == [
            ops[0],
            ("attach", "/var/task", 0, True, 0, True),
            ("attach", "/opt/one", 1, False, 2, False),
            ops[3],
        ]
        assert len(trees) == 2 and all(os.fstat(fd) for fd in trees)
    finally:
        mounttree.close_all(trees)


def test_a_failed_clone_closes_what_was_opened(tmp_path: Path) -> None:
    before = set(os.listdir("/proc/self/fd"))
    ops = [("bind", "/a", str(tmp_path), True, 0), ("bind", "/b", str(tmp_path / "gone"), True, 0)]
    with pytest.raises(OSError):
        mounttree.detach_binds(ops)
    assert set(os.listdir("/proc/self/fd")) == before


def test_a_tree_attaches_read_only_in_another_mount_namespace(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text("handler = 1\n")
    target = tmp_path / "root"
    target.mkdir()
    tree = mounttree.open_tree(str(code))
    reply_r, reply_w = os.pipe()
    child = os.fork()
    if child == 0:  # a new mount namespace, as a sandbox's init has
        status = 1
        try:
            if ctypes.CDLL(None, use_errno=True).unshare(0x00020000) != 0:
                raise OSError(ctypes.get_errno(), "unshare")
            rootsteps.mount(None, "/", None, rootsteps.MS_REC | rootsteps.MS_PRIVATE, "")
            rootsteps.attach(tree, f"{target}/var/task", True, 0, True)
            seen = (target / "var" / "task" / "app.py").read_text()
            try:
                (target / "var" / "task" / "new").write_text("")
                verdict = "writable"
            except OSError as exc:
                verdict = os.strerror(exc.errno or 0)
            os.write(reply_w, f"{seen.strip()}|{verdict}".encode())
            status = 0
        finally:
            os._exit(status)
    os.close(reply_w)
    os.close(tree)
    reply = os.read(reply_r, 4096).decode()
    os.close(reply_r)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert reply == "handler = 1|Read-only file system"
    # Attached in the child's namespace only: the host sees no mount there.
    assert not (target / "var" / "task" / "app.py").exists()
