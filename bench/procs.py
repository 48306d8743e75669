"""Reading the process tree and memory of the servers under test from /proc.

Memory is read from ``smaps_rollup``: RSS counts every resident page a process maps, so the
interpreter and libraries shared by a thousand environments would be counted a thousand
times; PSS divides each shared page among its sharers and adds up to what the machine really
spends. Both are reported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Memory:
    rss_kib: int = 0
    pss_kib: int = 0
    private_kib: int = 0  # Private_Clean + Private_Dirty: freed if the process exits

    def __add__(self, other: Memory) -> Memory:
        return Memory(
            self.rss_kib + other.rss_kib,
            self.pss_kib + other.pss_kib,
            self.private_kib + other.private_kib,
        )


def parent_map() -> dict[int, int]:
    """pid → parent pid for every process visible now."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                raw = fh.read()
        except OSError:
            continue
        fields = raw[raw.rindex(b")") + 2 :].split()
        if fields[0] not in (b"Z", b"X"):
            parents[int(name)] = int(fields[1])
    return parents


def descendants(root: int) -> list[int]:
    """Live descendants of ``root`` (not ``root`` itself), parents before children."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parent_map().items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    stack = list(children.get(root, ()))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


def memory(pid: int) -> Memory:
    """PSS/RSS of one process; zero when it is gone or unreadable."""
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[-1] == "kB":
                    values[key] = int(parts[0])
    except (OSError, ValueError):
        return Memory()
    return Memory(
        values.get("Rss", 0),
        values.get("Pss", 0),
        values.get("Private_Clean", 0) + values.get("Private_Dirty", 0),
    )


def environ_value(pid: int, name: str) -> str | None:
    """One variable from a process's initial environment (None when absent or unreadable)."""
    prefix = name.encode() + b"="
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            entries = fh.read().split(b"\0")
    except OSError:
        return None
    for entry in entries:
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode(errors="replace")
    return None


def function_processes(server_pid: int) -> dict[int, str]:
    """Descendants of a lambdalite server that run a function: pid → function name.

    Every runtime process starts with ``AWS_LAMBDA_FUNCTION_NAME`` in its environment, which
    tells environments apart from anything else the server might start.
    """
    found: dict[int, str] = {}
    for pid in descendants(server_pid):
        name = environ_value(pid, "AWS_LAMBDA_FUNCTION_NAME")
        if name is not None:
            found[pid] = name
    return found


def mem_available_kib() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def mem_total_kib() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return 0
