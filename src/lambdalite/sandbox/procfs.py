"""Reading the process table from /proc, for sandboxes without cgroups.

Without cgroups the only way to know which processes a sandbox started, and how much memory
they use, is to look: this module reads ``/proc/<pid>/stat`` for every process and answers
"which processes belong to this tree" questions on that snapshot.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    pgrp: int
    session: int
    start_time: int  # clock ticks since boot; tells a reused pid apart
    rss_bytes: int
    state: str

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X")


def read(pid: int) -> ProcInfo | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    rest = raw[raw.rindex(b")") + 2 :].split()
    try:
        return ProcInfo(
            pid=pid,
            ppid=int(rest[1]),
            pgrp=int(rest[2]),
            session=int(rest[3]),
            start_time=int(rest[19]),
            rss_bytes=int(rest[21]) * _PAGE,
            state=rest[0].decode(),
        )
    except (IndexError, ValueError):
        return None


def scan() -> dict[int, ProcInfo]:
    table: dict[int, ProcInfo] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = read(int(name))
            if info is not None:
                table[info.pid] = info
    return table


def members(
    table: dict[int, ProcInfo], session: int, known: Iterable[tuple[int, int]]
) -> dict[int, ProcInfo]:
    """Live processes of a sandbox: its session, processes seen before, and their descendants.

    ``known`` holds (pid, start time) pairs from earlier snapshots, so a daemon that moved to a
    session of its own stays tracked once it has been seen, and a reused pid is not.
    """
    found = {
        p.pid: p for p in table.values() if p.alive and (p.session == session or p.pid == session)
    }
    for pid, start in known:
        info = table.get(pid)
        if info is not None and info.alive and info.start_time == start:
            found[pid] = info
    children: dict[int, list[ProcInfo]] = {}
    for info in table.values():
        if info.alive:
            children.setdefault(info.ppid, []).append(info)
    stack = list(found)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child.pid not in found:
                found[child.pid] = child
                stack.append(child.pid)
    return found
