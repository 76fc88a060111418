"""The two benchmark profiles: ``make bench`` (full) and ``make bench-quick`` (under 4 minutes)."""

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
    # Overload: open loop at overload_factor x the API's closed-loop throughput, the pipeline paused
    overload_factor: float = 2.0
    overload_s: float = 15.0
    overload_timeout_s: float = 10.0  # a client gives up after this (counted as a timeout)
    overload_max_in_flight: int = 1024  # the generator's outstanding requests at most
    idle_s: float = 5.0  # the pipeline's idle CPU, measured before the end-to-end phase
    quiet_deadline_s: float = 15.0  # after a phase settled: until its sessions ended and the pipeline is idle
    polling_open_s: float = 10.0
    polling_fractions: tuple[float, ...] = (0.25, 0.5, 0.75)
    e2e_rate: float = 200.0
    e2e_s: float = 30.0
    e2e_ready_deadline_s: float = 900.0  # until every session of the sustained phase is ready (or not)
    e2e_unsaturated_s: float = 20.0  # at half the rate the pipeline sustained, followed over SSE
    burst: int = 10_000
    burst_ready_deadline_s: float = 1200.0
    # End to end on a real livekit-server (the agent on WebRTC), at a rate 2 cores serve; one run per job executor
    real_rate: float = 10.0
    real_s: float = 60.0
    real_ready_deadline_s: float = 300.0
    real_executors: tuple[str, ...] = ("thread", "process")
    real_build: bool = True  # build livekit-server with Go when no binary is found (the first build takes minutes)
    profile: bool = True


FULL = BenchConfig(name="full")
QUICK = BenchConfig(
    name="quick",
    warmup_s=1.0,
    closed_s=3.0,
    open_s=4.0,
    open_fractions=(0.25, 0.5),  # the full run adds 75%
    overload_s=5.0,
    idle_s=3.0,
    polling_open_s=1.5,
    polling_fractions=(0.5,),
    # 400 sessions: psutil counts CPU in 10 ms ticks, so over 100 sessions a process's ms per session moved in steps of
    # 0.1 (0.2 for the dispatcher + session store sum the target is on), and fixed costs weighed 4x more
    e2e_s=2.0,
    e2e_ready_deadline_s=90.0,
    e2e_unsaturated_s=4.0,
    burst=150,
    burst_ready_deadline_s=90.0,
    real_rate=5.0,
    real_s=20.0,
    real_ready_deadline_s=60.0,
    real_executors=("thread",),  # the full run adds the process executor
    real_build=False,  # no build within a quick run: `make livekit-server` first
)
