"""The file system a namespace sandbox sees, as a list of steps for the launcher.

The root is an empty tmpfs, remounted read-only once built. Into it go, read-only and
``nosuid``/``nodev``:

* the operating system's program and library trees (``/usr`` and ``/bin``, ``/lib*`` ... as
  binds, or as the same symlinks when the host merged them into ``/usr``);
* a synthetic ``/etc``: copies of the few files programs read (dynamic linker cache, name
  service and resolver configuration, protocol and service tables), the CA certificates, and
  ``passwd``/``group``/``hosts``/``hostname`` written for the sandbox. No ``shadow``, no host
  users, no host configuration beyond that;
* the function's code at ``/var/task`` and the runtime client at ``/var/runtime``, an empty
  ``/opt`` (where layers go);
* whatever host paths the runtime command names that are not already visible (an interpreter
  installed under ``/root/.pyenv/...`` brings its installation prefix, at its own path);
* a private tmpfs ``/tmp`` of the function's ephemeral storage size, a fresh ``/proc`` of the
  sandbox's PID namespace (``hidepid=2``: a function does not even see the sandbox's init),
  and a ``/dev`` with only ``null``, ``zero``, ``full``, ``random`` and ``urandom``.

The data directory, the database, other functions' code and everything else of the host are
simply not there. Steps are tuples so they ``marshal`` to the launcher unchanged; their shapes
are documented in ``lambdalite.sandbox.launcher._apply``.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambdalite.sandbox.base import Layout

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
_LOCKED = MS_NOSUID | MS_NODEV

TASK_ROOT = "/var/task"
RUNTIME_DIR = "/var/runtime"
OPT_DIR = "/opt"
SANDBOX_USER = "sbx_user1051"  # the user name functions see on Lambda

Op = tuple[Any, ...]

# Top-level trees a dynamically linked program may need; missing ones are skipped.
_SYSTEM_TREES = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
# /etc entries copied (files), re-created (symlinks) or bound read-only (directories).
# (The dynamic linker reads only its cache; ld.so.conf is for ldconfig, which cannot run here.)
_ETC_ENTRIES = (
    "ld.so.cache", "nsswitch.conf", "gai.conf", "host.conf",
    "protocols", "services", "localtime", "os-release", "alternatives", "ssl/certs",
    "ssl/openssl.cnf", "pki/tls/certs", "pki/ca-trust/extracted",
)  # fmt: skip
_NETWORK_ETC = ("resolv.conf",)  # only useful with the host's network
_DEVICES = ("null", "zero", "full", "random", "urandom")
_MAX_COPY = 256 * 1024  # larger /etc files are bound instead of copied


@dataclass(frozen=True)
class SystemView:
    """The part of every sandbox's file system that does not depend on the function."""

    ops: tuple[Op, ...]
    visible: tuple[str, ...]  # host directories that appear at their own path

    def covers(self, path: str) -> bool:
        return any(path == v or path.startswith(v.rstrip("/") + "/") for v in self.visible)


def _ro_bind(target: str, source: str) -> Op:
    return ("bind", target, source, True, _LOCKED)


def system_view(host_root: str = "/", host_network: bool = True) -> SystemView:
    """Inspect the host once and describe the system part of the sandbox root."""
    ops: list[Op] = []
    visible: list[str] = []
    for name in _SYSTEM_TREES:
        path = os.path.join(host_root, name)
        if os.path.islink(path):
            ops.append(("symlink", "/" + name, os.readlink(path)))
        elif os.path.isdir(path):
            ops.append(_ro_bind("/" + name, path))
            visible.append("/" + name)
    ops.append(("dir", "/etc", 0o755))
    for name in _ETC_ENTRIES + (_NETWORK_ETC if host_network else ()):
        ops.extend(_etc_entry(os.path.join(host_root, "etc", name), "/etc/" + name))
    return SystemView(tuple(ops), tuple(visible))


def _etc_entry(source: str, target: str) -> list[Op]:
    if os.path.islink(source):
        return [("symlink", target, os.readlink(source))]
    if os.path.isdir(source):
        return [_ro_bind(target, source)]
    try:
        if os.path.getsize(source) > _MAX_COPY:
            return [_ro_bind(target, source)]
        with open(source, "rb") as fh:
            return [("file", target, fh.read(), 0o644)]
    except OSError:
        return []


def identity_files(uid: int, gid: int, hostname: str) -> list[Op]:
    """``passwd``, ``group``, ``hosts`` and ``hostname`` for one sandbox."""
    passwd = (
        f"root:x:0:0:root:/root:/sbin/nologin\n{SANDBOX_USER}:x:{uid}:{gid}::/tmp:/sbin/nologin\n"
    )
    group = f"root:x:0:\n{SANDBOX_USER}:x:{gid}:\n"
    hosts = f"127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    return [
        ("file", "/etc/passwd", passwd.encode(), 0o644),
        ("file", "/etc/group", group.encode(), 0o644),
        ("file", "/etc/hosts", hosts.encode(), 0o644),
        ("file", "/etc/hostname", hostname.encode() + b"\n", 0o644),
    ]


def runtime_paths(paths: Iterable[str], system: SystemView, skip: Sequence[Path]) -> list[str]:
    """Host paths to show at their own place so the runtime command can run.

    For each absolute, existing path (resolved): nothing when the system part already shows
    it or it lies in ``skip`` (the code and runtime directories, shown elsewhere); the
    installation prefix for an executable in a ``bin`` directory (``<prefix>/bin/python3.12``
    brings ``<prefix>``, with its standard library and shared libraries); the file itself
    otherwise.
    """
    found: list[str] = []
    skipped = [os.path.realpath(s) for s in skip]  # once, not per path: this runs per spawn
    for raw in paths:
        if not raw.startswith("/") or "\n" in raw or not os.path.exists(raw):
            continue
        real = os.path.realpath(raw)
        if any(real == s or real.startswith(s.rstrip("/") + "/") for s in skipped):
            continue
        parent = os.path.dirname(real)
        wanted = real
        if os.path.basename(parent) == "bin" and os.access(real, os.X_OK):
            wanted = os.path.dirname(parent)
        if wanted in ("", "/") or system.covers(wanted):
            continue
        if not any(wanted == f or wanted.startswith(f + "/") for f in found):
            found = [f for f in found if not f.startswith(wanted + "/")] + [wanted]
    return found


def sandbox_ops(
    system: SystemView,
    *,
    code_dir: Path,
    runtime_dir: Path | None,
    extra: Sequence[str],
    opt_dir: Path | None = None,
    tmp_mb: int,
    uid: int,
    gid: int,
    hostname: str,
) -> list[Op]:
    """Every step of one sandbox's root, system part first."""
    ops = list(system.ops)
    ops.extend(identity_files(uid, gid, hostname))
    ops.append(("dir", "/var", 0o755))
    ops.append(_ro_bind(TASK_ROOT, str(code_dir)))
    if runtime_dir is not None:
        ops.append(_ro_bind(RUNTIME_DIR, str(runtime_dir)))
    if opt_dir is not None:
        ops.append(_ro_bind(OPT_DIR, str(opt_dir)))
    else:
        ops.append(("dir", OPT_DIR, 0o755))
    ops.extend(_ro_bind(path, path) for path in extra)
    ops.extend(volatile_ops(tmp_mb))
    return ops


def volatile_ops(tmp_mb: int) -> list[Op]:
    """The sandbox's own ``/tmp``, ``/proc`` and ``/dev``, mounted over whatever root."""
    ops: list[Op] = []
    ops.append(("tmpfs", "/tmp", MS_NOSUID | MS_NODEV, f"mode=1777,size={tmp_mb}m"))
    ops.append(("proc", "/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2"))
    ops.append(("tmpfs", "/dev", MS_NOSUID | MS_NOEXEC, "mode=755,size=64k,nr_inodes=64"))
    ops.extend(("bind", f"/dev/{name}", f"/dev/{name}", False, 0) for name in _DEVICES)
    ops.append(("symlink", "/dev/fd", "/proc/self/fd"))
    for number, name in enumerate(("stdin", "stdout", "stderr")):
        ops.append(("symlink", f"/dev/{name}", f"/proc/self/fd/{number}"))
    return ops


def visible_path(arg: str, layout: Layout) -> str:
    """``arg`` as the sandboxed program must see it: mapped into /var/task or /var/runtime,
    or, for another existing host path, resolved (it is shown at its real path)."""
    if not arg.startswith("/") or "\n" in arg:
        return arg
    mapped = layout.translate(arg)
    if mapped != arg:
        return mapped
    if arg.startswith(TASK_ROOT + "/") or arg.startswith(RUNTIME_DIR + "/"):
        return arg
    return os.path.realpath(arg) if os.path.exists(arg) else arg


def check_executable(program: str, layout: Layout) -> None:
    """Fail like ``exec`` would, before starting anything, for a program that cannot run."""
    if not program:
        raise OSError(errno.ENOENT, "empty command")
    if "/" not in program:
        return  # looked up on PATH inside the sandbox
    host = program
    for inside, outside in (
        (layout.task_root, layout.host_task_root),
        (layout.runtime_dir, layout.host_runtime_dir),
    ):
        if program.startswith(inside + "/"):
            host = str(outside) + program[len(inside) :]
    if host.startswith(OPT_DIR + "/") and not os.path.lexists(host):
        return  # in the layers' tree (a layer's ``bootstrap``), which the caller checked
    if not os.path.exists(host):
        raise OSError(errno.ENOENT, f"No such file or directory: {program!r}")
    if os.path.isdir(host) or not os.access(host, os.X_OK):
        raise OSError(errno.EACCES, f"Permission denied: {program!r}")
