"""Each measured phase: run the load generator against one target while watching memory and CPU."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.load_spec import LoadResult, LoadSpec, result_from_json, spec_json
from bench.measure import ResourceMonitor, cpu_delta
from bench.profiling import Recording, top_functions
from bench.stats import summary


@dataclass
class PhaseResult:
    """One phase: what was sent, what came back, what it cost each service."""

    name: str
    target: str
    mode: str
    offered_rate: float | None
    sent: int
    throughput_rps: float
    latency_ms: dict[str, float]
    statuses: dict[str, int]
    loadgen_cpu_fraction: float  # of one core: the generator's headroom
    cpu_s: dict[str, float]
    peak_rss_mb: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)
    latency_by_status_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    latencies_sample: list[float] = field(default_factory=list)  # for the plot; not written to the JSON

    def to_json(self) -> dict[str, Any]:
        """The phase without its raw samples."""
        data = asdict(self)
        data.pop("latencies_sample")
        return data


async def run_loadgen(spec: LoadSpec) -> LoadResult:
    """Run the generator in its own process and parse what it reports."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.loadgen", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate(spec_json(spec).encode())
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator failed with code {proc.returncode}")
    return result_from_json(json.loads(out))


@dataclass
class PhaseRunner:
    """Runs phases against the stack's URLs, with resource accounting and optional profiles."""

    monitor: ResourceMonitor
    headers: dict[str, str]
    profile_dir: Path | None = None
    results: list[PhaseResult] = field(default_factory=list)

    async def run(
        self,
        name: str,
        target: str,
        spec: LoadSpec,
        profile: dict[str, int] | None = None,
        sessions_of: str = "",
    ) -> tuple[PhaseResult, LoadResult]:
        """Run one phase; ``profile`` maps labels to pids sampled with py-spy while it runs."""
        self.monitor.reset_peaks()
        cpu0 = self.monitor.cpu()
        profiles = await self._profiles(f"{target}-{name}", profile or {})
        load = await run_loadgen(spec)
        recorded = [await recording.stop() for recording in profiles.values()]
        result = self._result(name, target, spec, load, cpu_delta(cpu0, self.monitor.cpu()))
        for label, path in zip(profiles, recorded, strict=True):
            if path is not None:
                result.extra.setdefault("profiles", {})[label] = top_functions(path)
        self.results.append(result)
        return result, load

    async def _profiles(self, name: str, pids: dict[str, int]) -> dict[str, Recording]:
        if self.profile_dir is None:
            return {}
        return {
            label: await Recording.start(pid, self.profile_dir / f"{name}-{label}.txt") for label, pid in pids.items()
        }

    def _result(self, name: str, target: str, spec: LoadSpec, load: LoadResult, cpu: dict[str, float]) -> PhaseResult:
        sent = len(load.latencies_ms)
        ok = sum(n for status, n in load.statuses.items() if status in ("200", "202"))
        return PhaseResult(
            name=name,
            target=target,
            mode=spec.mode,
            offered_rate=spec.rate if spec.mode == "open" else None,
            sent=sent,
            throughput_rps=ok / load.wall_s if load.wall_s else 0.0,
            latency_ms=summary(load.latencies_ms),
            statuses=load.statuses,
            loadgen_cpu_fraction=load.cpu_s / load.wall_s if load.wall_s else 0.0,
            cpu_s=cpu,
            peak_rss_mb=self.monitor.reset_peaks(),
            extra={"max_start_lag_ms": load.max_start_lag_ms, "slot_waits": load.slot_waits}
            if spec.mode == "open"
            else {},
            latency_by_status_ms={status: summary(ms) for status, ms in load.latencies_by_status.items()},
            latencies_sample=load.latencies_ms[:: max(1, sent // 20_000)],
        )


def path_for(flow_id: str) -> str:
    """The route every target serves."""
    return f"/api/flows/{flow_id}/sessions"


def per_thousand(cpu: dict[str, float], sessions: int) -> dict[str, float]:
    """CPU seconds per 1,000 sessions, per service."""
    return {name: 1000 * s / sessions for name, s in cpu.items()} if sessions else {}


def now() -> float:
    """Monotonic seconds."""
    return time.monotonic()
