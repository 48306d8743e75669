"""State shared by the sections of one run: the plan, scratch space, results, the echo server."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import servers
from bench.figures import Results
from bench.plan import Plan
from lambdalite.runtimes.registry import RuntimeRegistry


@dataclass
class Context:
    plan: Plan
    scratch: Path
    interpreter: str  # the real interpreter that runs the plan's runtime (no shims)
    settings: dict[str, str] = field(default_factory=dict)  # extra lambdalite settings
    ministack: Path | None = None
    ministack_missing: str = ""
    results: Results = field(default_factory=Results)
    info: dict[str, Any] = field(default_factory=dict)  # facts learned while measuring
    _echo: servers.ChildServer | None = None
    _started: float = field(default_factory=time.monotonic)

    def log(self, message: str) -> None:
        elapsed = time.monotonic() - self._started
        print(f"[{elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)

    def interpreter_for(self, runtime: str) -> str | None:
        """The interpreter lambdalite runs ``runtime`` functions with (as its registry finds it)."""
        command = RuntimeRegistry(self.settings.get("python_runtimes", "")).resolve(runtime)
        return command.interpreter if command else None

    def echo(self) -> servers.ChildServer:
        """The bare echo server, started on first use and kept for the whole run."""
        if self._echo is None:
            self._echo = servers.echo(self.scratch).start()
        return self._echo

    def lambdalite(self, **settings: Any) -> servers.ChildServer:
        """A lambdalite server with the run's extra settings under the given ones."""
        return servers.lambdalite(self.scratch, **{**self.settings, **settings})

    def note_sandbox(self, section: str, server: servers.ChildServer) -> None:
        """Record which execution environments a lambdalite server said it uses."""
        line = server.log_line("execution environments:")
        if line:
            self.info[f"sandbox.{section}"] = line.split("execution environments:", 1)[1].strip()

    def close(self) -> None:
        if self._echo is not None:
            self._echo.stop()
            self._echo = None
