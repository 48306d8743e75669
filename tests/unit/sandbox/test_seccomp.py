"""The seccomp filter: its tables, its program, and its effect on a real process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lambdalite.sandbox import seccomp

HEADERS = {
    "x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    "aarch64": Path("/usr/include/asm-generic/unistd.h"),
}


def test_tables_cover_every_denied_call() -> None:
    for arch in ("x86_64", "aarch64"):
        denied = seccomp.denied_syscalls(arch)
        assert {"mount", "ptrace", "bpf", "unshare", "setns", "keyctl", "kexec_load"} <= set(denied)
        assert len(set(denied.values())) == len(denied), "two names share a number"
    assert seccomp.denied_syscalls("x86_64")["mount"] == 165
    assert seccomp.denied_syscalls("aarch64")["mount"] == 40
    assert "iopl" in seccomp.denied_syscalls("x86_64")
    assert "iopl" not in seccomp.denied_syscalls("aarch64")


@pytest.mark.parametrize("arch", sorted(HEADERS))
def test_numbers_match_the_kernel_headers(arch: str) -> None:
    header = HEADERS[arch]
    if not header.exists():
        pytest.skip(f"{header} is not installed")
    text = header.read_text()
    for name, number in seccomp.SYSCALLS[arch].items():
        match = re.search(rf"#define __NR(?:3264)?_{name}\s+(\d+)\b", text)
        if match is None:
            continue  # not every header defines the obsolete calls
        assert int(match.group(1)) == number, name


def test_program_shape() -> None:
    for arch in ("x86_64", "aarch64"):
        program = seccomp.build(arch)
        assert len(program) % 8 == 0
        # Every call is checked: arch, nr, the clone checks, one compare per denied call.
        assert len(program) // 8 > len(seccomp.denied_syscalls(arch))
    with pytest.raises(seccomp.UnsupportedArchitecture):
        seccomp.build("mips")


CHILD = textwrap.dedent(
    """
    import ctypes, errno, json, os, struct, sys
    from lambdalite.sandbox import seccomp

    libc = ctypes.CDLL(None, use_errno=True)
    arch = seccomp.machine()
    table = seccomp.SYSCALLS[arch]
    program = seccomp.build(arch)
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("@HP", len(program) // 8, ctypes.addressof(buf))
    zero = ctypes.c_ulong(0)
    assert libc.prctl(38, ctypes.c_ulong(1), zero, zero, zero) == 0  # no_new_privs
    assert libc.prctl(22, ctypes.c_ulong(2), fprog, zero, zero) == 0  # the filter

    def call(number, *args):
        ctypes.set_errno(0)
        result = libc.syscall(number, *[ctypes.c_ulong(a) for a in args])
        if result == 0 and number == table["clone"]:
            os._exit(0)  # a clone that got through: the child leaves at once
        return errno.errorcode.get(ctypes.get_errno(), "OK") if result == -1 else "OK"

    results = {
        "clone_newuts": call(table["clone"], 0x04000000 | 17, 0, 0, 0, 0),
        "clone3": call(table["clone3"], 0, 0),
        "unshare_user": call(table["unshare"], 0x10000000),
        "ptrace_traceme": call(table["ptrace"], 0, 0, 0, 0),
        "keyctl": call(table["keyctl"], 0, 0xFFFFFFFD, 0),
        "mount": call(table["mount"], 0, 0, 0, 0, 0),
    }
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    results["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    results["getpid"] = os.getpid() > 0
    print(json.dumps(results))
    """
)


def test_filter_refuses_and_allows_in_a_real_process() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=30, check=False
    )
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert results == {
        "clone_newuts": "EPERM",
        "clone3": "ENOSYS",
        "unshare_user": "EPERM",
        "ptrace_traceme": "EPERM",
        "keyctl": "EPERM",
        "mount": "EPERM",
        "fork": 7,
        "getpid": True,
    }


TEMPLATE_CHILD = textwrap.dedent(
    """
    import ctypes, errno, json, os, struct
    from lambdalite.sandbox import seccomp

    libc = ctypes.CDLL(None, use_errno=True)
    table = seccomp.SYSCALLS[seccomp.machine()]
    zero = ctypes.c_ulong(0)
    assert libc.prctl(38, ctypes.c_ulong(1), zero, zero, zero) == 0  # no_new_privs

    def install(program):
        buf = ctypes.create_string_buffer(program, len(program))
        fprog = struct.pack("@HP", len(program) // 8, ctypes.addressof(buf))
        assert libc.prctl(22, ctypes.c_ulong(2), fprog, zero, zero) == 0

    def call(number, *args):
        ctypes.set_errno(0)
        result = libc.syscall(number, *[ctypes.c_ulong(a) for a in args])
        return errno.errorcode.get(ctypes.get_errno(), "OK") if result == -1 else "OK"

    def probe():
        return {
            "unshare_nothing": call(table["unshare"], 0),
            "mount_nothing": call(table["mount"], 0, 0, 0, 0, 0),
            "setns": call(table["setns"], 0xFFFF, 0),
            "ptrace_traceme": call(table["ptrace"], 0, 0, 0, 0),
        }

    install(seccomp.build_template())
    template = probe()
    install(seccomp.build())  # what a restored copy adds on top
    print(json.dumps({"template": template, "copy": probe()}))
    """
)


def test_template_filter_and_the_strict_one_stacked_on_it() -> None:
    out = subprocess.run(
        [sys.executable, "-c", TEMPLATE_CHILD],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    template = results["template"]
    # unshare and mount reach the kernel (which answers for itself); the rest stays refused.
    assert template["unshare_nothing"] == "OK"
    assert template["mount_nothing"] not in ("OK", "EPERM")
    assert template["setns"] == "EPERM"
    assert template["ptrace_traceme"] == "EPERM"
    assert results["copy"] == {
        "unshare_nothing": "EPERM",
        "mount_nothing": "EPERM",
        "setns": "EPERM",
        "ptrace_traceme": "EPERM",
    }
