"""Reading the process tree and memory of the servers under test from /proc.

Memory is read from ``smaps_rollup``: RSS counts every resident page a process maps, so the
interpreter and libraries shared by a thousand environments would be counted a thousand
times; PSS divides each shared page among its sharers and adds up to what the machine really
spends. Both are reported.
"""

from __future__ import annotations

import json
import os
import urllib.request
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


def function_processes(endpoint: str) -> dict[int, str]:
    """Processes of a lambdalite server's live environments: pid → function name.

    The server lists its environments with the host pid of each (the runtime, or the
    sandbox's init that holds it); every descendant of that pid belongs to the environment
    too. ``/proc`` alone cannot tell: environments forked from a pre-initialized runtime
    share its command line and initial environment block.
    """
    with urllib.request.urlopen(f"{endpoint}/_lambdalite/environments", timeout=30) as reply:
        listed = json.load(reply)["environments"]
    children: dict[int, list[int]] = {}
    for pid, ppid in parent_map().items():
        children.setdefault(ppid, []).append(pid)
    found: dict[int, str] = {}
    for env in listed:
        if env.get("pid") is None or env.get("state") == "dead":
            continue
        stack = [int(env["pid"])]
        while stack:
            pid = stack.pop()
            found[pid] = env["functionName"]
            stack.extend(children.get(pid, ()))
    return found


def environment_count(endpoint: str) -> dict[str, int]:
    """Live environments of a lambdalite server per function name."""
    with urllib.request.urlopen(f"{endpoint}/_lambdalite/environments", timeout=30) as reply:
        listed = json.load(reply)["environments"]
    counts: dict[str, int] = {}
    for env in listed:
        if env.get("pid") is not None and env.get("state") != "dead":
            counts[env["functionName"]] = counts.get(env["functionName"], 0) + 1
    return counts


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
