"""How much of everything a run measures: the quick (seconds) and full (minutes) plans."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

SECTIONS = ("floors", "cold", "warm", "throughput", "stream", "scale", "replay", "peer")


@dataclass(frozen=True)
class Plan:
    mode: str
    runtime: str = "python3.11"
    # floors
    python_s_samples: int = 50
    fork_samples: int = 300
    loopback_samples: int = 3000
    echo_samples: int = 2000
    # cold starts: one new function per sample
    cold_samples: int = 40
    cold_boto3_samples: int = 20
    # warm invokes at concurrency 1, in interleaved blocks with the echo server
    warm_samples: int = 3000
    warm_block: int = 100
    warm_logging_samples: int = 500
    # throughput: closed-loop clients, one connection each
    levels: tuple[int, ...] = (1, 8, 64)
    load_warmup_s: float = 1.0
    load_seconds: float = 5.0
    # response streaming: requests per path and runtime, and the functions' pause
    stream_samples: int = 100
    stream_pause_ms: int = 100
    # scale-up and density
    scale_target: int = 1000
    density_steps: tuple[int, ...] = (1000, 1500, 2000)
    density_probe: int = 8
    start_window: int = 8  # environments starting at once while density ramps up gently
    memory_budget_gib: float = 0.0  # 0: 60% of the memory available when the run starts
    scale_timeout_s: float = 120.0
    # trace replay
    replay_start_minute: int = 1  # offset into the trace's minutes (0 = minute 480); the
    # minute before it is the warm-up
    replay_minutes: int = 5
    replay_seconds: float = 60.0
    replay_seed: int = 4
    # the peer
    peer_cold_samples: int = 15
    peer_cold_boto3_samples: int = 5
    peer_warm_samples: int = 200
    peer_load_seconds: float = 5.0

    @property
    def compression(self) -> float:
        """Trace seconds per replayed second."""
        return self.replay_minutes * 60.0 / self.replay_seconds

    def replace(self, **changes: object) -> Plan:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


FULL = Plan(mode="full")

QUICK = Plan(
    mode="quick",
    python_s_samples=5,
    fork_samples=30,
    loopback_samples=200,
    echo_samples=200,
    cold_samples=3,
    cold_boto3_samples=2,
    warm_samples=200,
    warm_block=50,
    warm_logging_samples=50,
    load_warmup_s=0.2,
    load_seconds=0.5,
    stream_samples=10,
    scale_target=16,
    density_steps=(16, 32),
    density_probe=4,
    scale_timeout_s=60.0,
    replay_minutes=1,
    replay_seconds=12.0,
    peer_cold_samples=2,
    peer_cold_boto3_samples=1,
    peer_warm_samples=10,
    peer_load_seconds=0.5,
)
