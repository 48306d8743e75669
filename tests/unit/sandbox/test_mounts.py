"""The sandbox file system plan, and host paths seen through a layout."""

from __future__ import annotations

from pathlib import Path

from lambdalite.sandbox import mounts
from lambdalite.sandbox.base import Layout


def fake_host(root: Path) -> Path:
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "lib").mkdir()
    (root / "bin").symlink_to("usr/bin")
    (root / "lib64").mkdir()
    etc = root / "etc"
    etc.mkdir()
    (etc / "ld.so.cache").write_bytes(b"cache")
    (etc / "nsswitch.conf").write_text("hosts: files dns\n")
    (etc / "resolv.conf").write_text("nameserver 10.0.0.1\n")
    (etc / "shadow").write_text("root:secret:::::::\n")
    (etc / "passwd").write_text(
        "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"
    )
    (etc / "localtime").symlink_to("/usr/share/zoneinfo/Etc/UTC")
    (etc / "ssl" / "certs").mkdir(parents=True)
    (etc / "ssl" / "private").mkdir()
    return root


def by_target(ops: list[mounts.Op] | tuple[mounts.Op, ...]) -> dict[str, mounts.Op]:
    return {op[1]: op for op in ops}


def test_system_view_takes_only_what_programs_need(tmp_path: Path) -> None:
    host = fake_host(tmp_path)
    view = mounts.system_view(str(host), host_network=True)
    ops = by_target(view.ops)
    assert ops["/usr"] == (
        "bind",
        "/usr",
        str(host / "usr"),
        True,
        mounts.MS_NOSUID | mounts.MS_NODEV,
    )
    assert ops["/bin"] == ("symlink", "/bin", "usr/bin")
    assert ops["/lib64"][0] == "bind" and "/lib" not in ops  # missing trees are skipped
    assert ops["/etc/ld.so.cache"] == ("file", "/etc/ld.so.cache", b"cache", 0o644)
    assert ops["/etc/resolv.conf"][2] == b"nameserver 10.0.0.1\n"
    assert ops["/etc/localtime"] == ("symlink", "/etc/localtime", "/usr/share/zoneinfo/Etc/UTC")
    assert ops["/etc/ssl/certs"][0] == "bind"
    # No host secrets, no host users, nothing not asked for.
    for absent in ("/etc/shadow", "/etc/passwd", "/etc/ssl/private", "/etc/ssl"):
        assert absent not in ops
    assert view.covers("/usr/lib/python3") and not view.covers("/usrx")
    isolated = by_target(mounts.system_view(str(host), host_network=False).ops)
    assert "/etc/resolv.conf" not in isolated


def test_sandbox_ops_for_one_function(tmp_path: Path) -> None:
    view = mounts.system_view(str(fake_host(tmp_path / "host")))
    code, runtime = tmp_path / "code", tmp_path / "runtime"
    ops = mounts.sandbox_ops(
        view,
        code_dir=code,
        runtime_dir=runtime,
        extra=["/opt/python3.12"],
        tmp_mb=512,
        uid=1234567,
        gid=1234567,
        hostname="localhost",
    )
    found = by_target(ops)
    assert found["/var/task"] == (
        "bind",
        "/var/task",
        str(code),
        True,
        mounts.MS_NOSUID | mounts.MS_NODEV,
    )
    assert found["/var/runtime"][2] == str(runtime) and found["/var/runtime"][3] is True
    assert found["/opt/python3.12"][:4] == ("bind", "/opt/python3.12", "/opt/python3.12", True)
    assert found["/tmp"] == (
        "tmpfs",
        "/tmp",
        mounts.MS_NOSUID | mounts.MS_NODEV,
        "mode=1777,size=512m",
    )
    assert found["/proc"][3] == "hidepid=2"
    assert {"/dev/null", "/dev/urandom", "/dev/fd"} <= set(found)
    passwd = found["/etc/passwd"][2].decode()
    assert "sbx_user1051:x:1234567:1234567::/tmp:" in passwd and "alice" not in passwd
    assert b"localhost" in found["/etc/hosts"][2]
    # The system part comes first, so the function's mounts are never shadowed by it.
    assert ops.index(found["/usr"]) < ops.index(found["/var/task"])


def test_runtime_paths(tmp_path: Path) -> None:
    view = mounts.system_view(str(fake_host(tmp_path / "host")))
    prefix = tmp_path / "py" / "3.12"
    (prefix / "bin").mkdir(parents=True)
    python = prefix / "bin" / "python3.12"
    python.write_text("")
    python.chmod(0o755)
    link = tmp_path / "venv-python"
    link.symlink_to(python)
    script = tmp_path / "scripts" / "client.py"
    script.parent.mkdir()
    script.write_text("")
    code = tmp_path / "code"
    code.mkdir()
    (code / "wrapper").write_text("")
    argv = [str(link), "-u", str(script), str(code / "wrapper"), "/does/not/exist", "text"]
    found = mounts.runtime_paths(argv, view, skip=[code])
    # An interpreter brings its prefix (found through the link), a plain file itself;
    # the code directory is shown elsewhere and paths that do not exist are nothing.
    assert found == [str(prefix), str(script)]
    assert mounts.runtime_paths([str(python), str(prefix / "bin")], view, []) == [str(prefix)]


def test_layout_translates_host_paths(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "code", tmp_path / "rt", "/var/task", "/var/runtime")
    assert layout.translate(str(tmp_path / "code")) == "/var/task"
    assert layout.translate(str(tmp_path / "code" / "bin" / "x")) == "/var/task/bin/x"
    assert layout.translate(str(tmp_path / "rt" / "python" / "launcher.py")) == (
        "/var/runtime/python/launcher.py"
    )
    assert layout.translate(str(tmp_path / "codex")) == str(tmp_path / "codex")
    assert layout.translate("/usr/bin/python3") == "/usr/bin/python3"
    identity = Layout.identity(tmp_path, tmp_path / "rt")
    assert identity.translate(str(tmp_path / "a")) == str(tmp_path / "a")
