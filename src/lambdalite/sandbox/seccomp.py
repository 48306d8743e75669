"""The seccomp filter every sandboxed program runs under, as a classic BPF program.

A function needs files, sockets, threads, processes and time; it has no business changing the
machine: mounting, tracing or reading other processes' memory, loading kernel code, creating
namespaces, setting the clock, touching kernel keyrings, rebooting. The filter refuses those
system calls with ``EPERM`` (the answer an unprivileged process gets anyway, so well-behaved
programs see a familiar error) and lets everything else through. Most of the refused calls need
capabilities the sandbox has already dropped; the filter is the second wall, and it also closes
the few that do not (``userfaultfd``, ``io_uring``, ``perf_event_open``, ``bpf`` on hosts that
allow unprivileged use, namespace creation through ``clone``).

Details that matter:

* The architecture is checked first. A process could otherwise enter through another system
  call table (32-bit ``int 0x80`` on x86-64, the x32 ABI, AArch32) where the numbers mean
  different calls; those processes are killed.
* ``clone`` is allowed unless its flags ask for a namespace. ``clone3`` passes its flags in
  memory a filter cannot read, so it fails with ``ENOSYS``, which makes the C library fall back
  to ``clone``.
* The program is built here, once per server, and shipped to the in-sandbox launcher as bytes;
  the launcher only installs it.
"""

from __future__ import annotations

import errno
import platform
import struct
from collections.abc import Iterable

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
_NR, _ARCH, _ARG0_LOW = 0, 4, 16

# Classic BPF opcodes used here.
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K

RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
RET_KILL_PROCESS = 0x80000000

# Every flag that creates a namespace through clone(); CLONE_NEWTIME (0x80) shares its bit with
# the exit signal in clone() and is only honoured by clone3() and unshare(), both refused.
CLONE_NAMESPACE_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)

# Refused system calls, by name. Grouped by what they would let a function do.
DENIED: tuple[str, ...] = (
    # the file system view
    "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr", "open_by_handle_at",
    "name_to_handle_at", "quotactl", "quotactl_fd", "swapon", "swapoff", "acct",
    # other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
    "process_madvise",
    # the kernel itself
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "bpf",
    "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "lookup_dcookie", "syslog", "reboot", "vhangup", "fanotify_init",
    "nfsservctl",
    # namespaces and identity of the machine
    "unshare", "setns", "sethostname", "setdomainname",
    # clocks
    "clock_settime", "clock_adjtime", "adjtimex", "settimeofday",
    # kernel keyrings
    "keyctl", "add_key", "request_key",
)  # fmt: skip

# x86-64 only: hardware I/O ports, LDT changes and long-gone module calls.
_X86_64_ONLY = (
    "iopl", "ioperm", "modify_ldt", "create_module", "get_kernel_syms", "query_module",
    "uselib", "ustat", "sysfs", "_sysctl",
)  # fmt: skip


# System call numbers (from the kernel's syscall tables; x86-64 has its own, AArch64 uses the
# generic one).
SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {
        "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "mount_setattr": 442, "open_by_handle_at": 304, "name_to_handle_at": 303,
        "quotactl": 179, "quotactl_fd": 443, "swapon": 167, "swapoff": 168, "acct": 163,
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_getfd": 438,
        "kcmp": 312, "process_madvise": 440, "init_module": 175, "finit_module": 313,
        "delete_module": 176, "kexec_load": 246, "kexec_file_load": 320, "bpf": 321,
        "perf_event_open": 298, "userfaultfd": 323, "io_uring_setup": 425,
        "io_uring_enter": 426, "io_uring_register": 427, "lookup_dcookie": 212, "syslog": 103,
        "reboot": 169, "vhangup": 153, "fanotify_init": 300, "nfsservctl": 180,
        "unshare": 272, "setns": 308, "sethostname": 170, "setdomainname": 171,
        "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159, "settimeofday": 164,
        "keyctl": 250, "add_key": 248, "request_key": 249, "iopl": 172, "ioperm": 173,
        "modify_ldt": 154, "create_module": 174, "get_kernel_syms": 177, "query_module": 178,
        "uselib": 134, "ustat": 136, "sysfs": 139, "_sysctl": 156,
        "clone": 56, "clone3": 435,
    },
    "aarch64": {
        "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "mount_setattr": 442, "open_by_handle_at": 265, "name_to_handle_at": 264,
        "quotactl": 60, "quotactl_fd": 443, "swapon": 224, "swapoff": 225, "acct": 89,
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "pidfd_getfd": 438,
        "kcmp": 272, "process_madvise": 440, "init_module": 105, "finit_module": 273,
        "delete_module": 106, "kexec_load": 104, "kexec_file_load": 294, "bpf": 280,
        "perf_event_open": 241, "userfaultfd": 282, "io_uring_setup": 425,
        "io_uring_enter": 426, "io_uring_register": 427, "lookup_dcookie": 18, "syslog": 116,
        "reboot": 142, "vhangup": 58, "fanotify_init": 262, "nfsservctl": 42,
        "unshare": 97, "setns": 268, "sethostname": 161, "setdomainname": 162,
        "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171, "settimeofday": 170,
        "keyctl": 219, "add_key": 217, "request_key": 218,
        "clone": 220, "clone3": 435,
    },
}  # fmt: skip

# AUDIT_ARCH_* values the kernel reports in seccomp_data.arch.
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_SYSCALL_BIT = 0x40000000
_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


class UnsupportedArchitecture(Exception):
    """No system call table for this machine; the sandbox cannot build its filter."""


def machine() -> str:
    """This host's architecture name as used by the tables (``x86_64`` or ``aarch64``)."""
    name = platform.machine().lower()
    return _ALIASES.get(name, name)


def denied_syscalls(arch: str) -> dict[str, int]:
    """Name to number of every call the filter refuses with EPERM on ``arch``."""
    table = _table(arch)
    names = DENIED + (_X86_64_ONLY if arch == "x86_64" else ())
    return {name: table[name] for name in names}


def _table(arch: str) -> dict[str, int]:
    try:
        return SYSCALLS[arch]
    except KeyError:
        raise UnsupportedArchitecture(f"no seccomp syscall table for {arch!r}") from None


class _Program:
    """A tiny assembler: instructions with symbolic jump targets, resolved on ``encode``."""

    def __init__(self) -> None:
        self._code: list[tuple[int, str | int, str | int, int]] = []
        self._labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self._labels[name] = len(self._code)

    def op(self, code: int, k: int, jt: str | int = 0, jf: str | int = 0) -> None:
        self._code.append((code, jt, jf, k))

    def encode(self) -> bytes:
        out = bytearray()
        for index, (code, jt, jf, k) in enumerate(self._code):
            out += struct.pack("=HBBI", code, self._offset(index, jt), self._offset(index, jf), k)
        return bytes(out)

    def _offset(self, index: int, target: str | int) -> int:
        if isinstance(target, int):
            return target
        offset = self._labels[target] - index - 1
        if not 0 <= offset <= 255:
            raise ValueError(f"jump to {target} out of range")
        return offset


# What a SnapStart template may do beyond a function (``build_template``): give each restored
# copy namespaces of its own and mount its private ``/tmp`` and ``/proc``.
TEMPLATE_ALLOWED = ("unshare", "mount")


def build_template(arch: str | None = None) -> bytes:
    """The filter of a SnapStart template in a namespace sandbox: the strict one, except that
    ``unshare`` and ``mount`` pass. The template runs as root of a user namespace of its own
    (see ``docs/snapstart.md``), so both act on namespaces it owns and nothing of the host;
    every restored copy stacks the strict filter on top before any function code runs."""
    return build(arch, allowed=TEMPLATE_ALLOWED)


def build(
    arch: str | None = None, extra_denied: Iterable[int] = (), allowed: Iterable[str] = ()
) -> bytes:
    """The filter for ``arch`` (default: this machine) as packed ``struct sock_filter``s.

    ``extra_denied`` adds system call numbers to refuse (tests use it to check the mechanism
    on a harmless call); ``allowed`` names calls of the refused list to let through.
    """
    arch = arch or machine()
    table = _table(arch)
    passed = {table[name] for name in allowed}
    denied = sorted((set(denied_syscalls(arch).values()) - passed) | set(extra_denied))
    p = _Program()
    p.op(_LD_W_ABS, _ARCH)
    p.op(_JEQ_K, AUDIT_ARCH[arch], 0, "kill")
    p.op(_LD_W_ABS, _NR)
    if arch == "x86_64":
        p.op(_JGE_K, _X32_SYSCALL_BIT, "kill", 0)
    p.op(_JEQ_K, table["clone"], "clone", 0)
    p.op(_JEQ_K, table["clone3"], "enosys", 0)
    for number in denied:
        p.op(_JEQ_K, number, "eperm", 0)
    p.op(_RET_K, RET_ALLOW)
    p.label("clone")
    p.op(_LD_W_ABS, _ARG0_LOW)
    p.op(_JSET_K, CLONE_NAMESPACE_FLAGS, "eperm", 0)
    p.op(_RET_K, RET_ALLOW)
    p.label("eperm")
    p.op(_RET_K, RET_ERRNO | errno.EPERM)
    p.label("enosys")
    p.op(_RET_K, RET_ERRNO | errno.ENOSYS)
    p.label("kill")
    p.op(_RET_K, RET_KILL_PROCESS)
    return p.encode()
