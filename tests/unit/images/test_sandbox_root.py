"""The file system steps of a sandbox rooted in an image (``sandbox.rootfs``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lambdalite.images import rootfs
from lambdalite.sandbox.rootfs import check_program, image_ops


def _tree(tmp_path: Path) -> Path:
    layer = tmp_path / "layer"
    (layer / "bin").mkdir(parents=True)
    (layer / "bin/app").write_bytes(b"")
    os.symlink("/proc/self/root", layer / "tmp")  # an image trying to redirect a mount
    rootfs.build([layer], tmp_path / "root")
    return tmp_path / "root"


def test_image_ops_bind_the_tree_read_only_then_private_mounts(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    assert (root / "tmp").is_dir() and not (root / "tmp").is_symlink()
    ops = image_ops(root, tmp_mb=64, host_network=True)
    assert ops[0][:4] == ("bind", "/", str(root), True)
    targets = [op[1] for op in ops]
    assert targets.index("/tmp") > 0 and "/proc" in targets and "/dev/null" in targets
    assert ("/etc/resolv.conf" in targets) == os.path.isfile("/etc/resolv.conf")
    isolated = [op[1] for op in image_ops(root, tmp_mb=64, host_network=False)]
    assert "/etc/resolv.conf" not in isolated


def test_trees_without_mountpoints_and_missing_programs_are_refused(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    check_program(root, "/bin/app", "/")
    check_program(root, "app", "/")  # looked up on PATH inside
    with pytest.raises(OSError, match="No such file"):
        check_program(root, "/bin/missing", "/")
    with pytest.raises(OSError, match="no ENTRYPOINT or CMD"):
        check_program(root, "", "/")
    os.rmdir(root / "proc")
    with pytest.raises(OSError, match="no directory /proc"):
        image_ops(root, tmp_mb=64, host_network=True)
