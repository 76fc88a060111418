"""The two benchmark profiles: ``make bench`` (full) and ``make bench-quick`` (under 3 minutes)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchConfig:
    """Durations, rates and sizes of every phase."""

    name: str
    agent_delay_ms: int = 500
    concurrency: int = 64  # closed-loop clients
    warmup_s: float = 2.0
    closed_s: float = 15.0
    open_s: float = 20.0
    open_fractions: tuple[float, ...] = (0.25, 0.5, 0.75)
    polling_open_s: float = 10.0
    polling_fractions: tuple[float, ...] = (0.25, 0.5, 0.75)
    e2e_rate: float = 200.0
    e2e_s: float = 30.0
    burst: int = 10_000
    burst_ready_deadline_s: float = 180.0
    drain_deadline_s: float = 120.0
    profile: bool = True


FULL = BenchConfig(name="full")
QUICK = BenchConfig(
    name="quick",
    warmup_s=1.0,
    closed_s=4.0,
    open_s=5.0,
    polling_open_s=3.0,
    polling_fractions=(0.5,),
    e2e_s=8.0,
    burst=2_000,
    burst_ready_deadline_s=30.0,
    drain_deadline_s=12.0,
)
