"""Settings: parsed once at the composition root and passed down explicitly.

Every field can come from a command-line flag or a ``LAMBDALITE_<FIELD>`` environment
variable; flags win. Nothing in the package reads the environment on its own, which keeps
tests free to run several servers with different settings in one process.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PORT = 4566


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path = field(default_factory=lambda: Path.home() / ".lambdalite")
    # None selects the embedded SQLite database inside data_dir.
    database_url: str | None = None
    region: str = "us-east-1"
    account_id: str = "000000000000"
    # Account-wide concurrency limit and the part of it reservations may never take.
    account_concurrency: int = 1000
    unreserved_concurrency_min: int = 100
    # Seconds an idle execution environment is kept warm before it is stopped.
    keep_alive: float = 600.0
    # Seconds the INIT phase may take before the environment is declared failed.
    init_timeout: float = 10.0
    # Address the per-environment Runtime API listeners bind to.
    runtime_api_host: str = "127.0.0.1"
    # "auto" uses cgroups when writable and falls back to polling RSS; "poll"; "off".
    memory_enforcement: str = "auto"
    # Execution environment backend: "auto" (namespaces when possible, else processes),
    # "namespace" (fail if unavailable) or "process" (no isolation beyond process groups).
    sandbox: str = "auto"
    # "host" shares the host network; "isolated" gives each environment its own network
    # namespace where only its Runtime API is reachable.
    network_mode: str = "host"
    # Keys accepted on AWS_IAM function URLs: "AKID:SECRET[:ACCOUNT],..." (none by default).
    credentials: str = ""
    # Refuse a SigV4 signature seen before (within its five-minute validity).
    reject_replayed_signatures: bool = True
    # Multiplier for async retry and backoff intervals and event ages (1.0 = AWS's; tests use
    # small values).
    async_delay_scale: float = 1.0
    # Asynchronous events one server runs at once (the concurrency limits apply on top); 0
    # makes a server that accepts events and leaves their delivery to others sharing the store.
    async_workers: int = 64
    # Seconds a claimed asynchronous event stays invisible to other servers; renewed while it
    # runs, so after a crash its events are delivered again this long after the last renewal.
    async_lease: float = 30.0
    # New execution environments per function per 10 seconds (AWS's scaling rate).
    scaling_rate: int = 1000
    # Extra interpreter mappings, "python3.12=/usr/bin/python3.12,python3.13=/opt/py/bin/python3".
    python_runtimes: str = ""
    # Node.js mappings, "nodejs20.x=/usr/bin/node,nodejs22.x=/opt/node22/bin/node"; taken as
    # given, while discovered binaries must report the runtime's major version.
    node_runtimes: str = ""
    # How long idle environments stay warm: "fixed" (``keep_alive`` seconds) or
    # "hybrid-histogram" (per function, from its observed idle times; Shahrad et al., ATC 2020).
    keep_alive_policy: str = "fixed"
    # Width in seconds of the idle-time histogram bins of "hybrid-histogram" (its range is 240
    # bins); a time-compressed replay compresses it with ``keep_alive``.
    keep_alive_bin: float = 60.0
    # Memory (MB of configured MemorySize) idle environments may hold together before the
    # least valuable are stopped; 0 = half of the machine's memory.
    idle_memory_mb: int = 0
    # Fork Python environments from pre-initialized runtime processes ("zygotes").
    zygotes: bool = True
    # Environments initializing at once across the server (more wait their turn); 0 = derived
    # from the number of CPUs.
    concurrent_inits: int = 0
    # Directories code may be served from live (hot reload), separated by ":"; none by default.
    hot_reload_paths: str = ""
    # Public base URL used in Code.Location links; derived from host/port when empty.
    public_url: str = ""
    log_level: str = "info"

    @property
    def database(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'lambdalite.db'}"

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``LAMBDALITE_*`` variables, then explicit overrides."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f"LAMBDALITE_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _coerce(f.type, raw)
        for key, value in overrides.items():
            if value is not None:
                values[key] = value
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"]).expanduser().resolve()
        return cls(**values)


def _coerce(kind: Any, raw: str) -> Any:
    text = str(kind)
    if text == "int":
        return int(raw)
    if text == "float":
        return float(raw)
    if text == "bool":
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if text == "Path":
        return Path(raw)
    return raw
