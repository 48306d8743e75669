"""The sandbox launchers of a backend, and the sweep of those a crashed server left behind.

A backend runs one plain launcher (``launcher.py`` with nothing preloaded, every program
exec'd) and, with zygotes on, one pre-initialized fork server per Python interpreter in use
(``zygotes.py``). All of them are ``forkserver.ForkServer`` processes; the names here are kept
for the code that knew the launcher by them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

from lambdalite.sandbox.cgroups import owner_token
from lambdalite.sandbox.forkserver import LAUNCHER, ForkServer, Spawned, receive

__all__ = ["LAUNCHER", "ForkServer", "Spawned", "Zygote", "receive", "sweep_launchers"]

log = logging.getLogger(__name__)


class Zygote(ForkServer):
    """The plain sandbox launcher of a backend (nothing preloaded, every program exec'd)."""

    def __init__(self, python: str, markers: list[str]) -> None:
        super().__init__(python, markers)


def sweep_launchers(state: Path, owner: str) -> None:
    """Kill the launchers and sandboxes left by a crashed server of this data directory
    (``state``). They exit by themselves once their server is gone; this catches any that
    could not. Live servers' processes, and other data directories', are left alone."""
    marker = f"--state={state}".encode()
    me = f"--owner={owner}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(LAUNCHER).encode() not in args or marker not in args or me in args:
            continue
        token = next((a[8:] for a in args if a.startswith(b"--owner=")), b"").decode()
        pid_text = token.split("-", 1)[0]
        if pid_text.isdigit() and owner_token(int(pid_text)) == token:
            continue  # its server is alive
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(entry.name), signal.SIGKILL)
            log.info("killed leftover sandbox process %s of a stopped server", entry.name)
