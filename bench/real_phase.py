"""End to end on a real livekit-server, one stack per agent job executor: sessions ready per second, POST -> ready,
CPU per session per process. Skipped, with the reason, when no real server can be had."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import structlog

from bench.config import BenchConfig
from bench.loadgen import LoadSpec
from bench.measure import ResourceMonitor, cpu_delta
from bench.observe import ready_delays_ms, statuses_of, wait_settled
from bench.phases import PhaseRunner, path_for
from bench.real_livekit import real_livekit_side, running_real_stack
from bench.stack import Stack
from bench.stats import summary
from devstack.readiness import NotReadyError

log = structlog.get_logger("bench")


async def real_livekit_phase(config: BenchConfig, work_dir: Path) -> dict[str, Any]:
    """``real_rate`` sessions/s for ``real_s`` seconds on a real server, once per executor; or why it was skipped."""
    out: dict[str, Any] = {"rate": config.real_rate, "duration_s": config.real_s, "runs": {}}
    for executor in config.real_executors:
        side = real_livekit_side(os.environ, allow_build=config.real_build)
        if isinstance(side, str):
            log.info("phase_skipped", name="end to end on a real LiveKit server", reason=side)
            return {"skipped": side}
        out["server"] = side.reason
        log.info("phase", name="end to end on a real LiveKit server", executor=executor, rate=config.real_rate)
        try:
            async with running_real_stack(side, executor, work_dir / f"logs-livekit-{executor}") as stack:
                out["runs"][executor] = await _sustained(config, stack)
        except NotReadyError as exc:  # the simulator's results are kept; the report says why
            out["runs"][executor] = {"failed": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
    return out


async def _sustained(config: BenchConfig, stack: Stack) -> dict[str, Any]:
    """The offered rate for the duration, then every session settled (bounded); times from the sessions' records."""
    monitor = ResourceMonitor(dict(stack.pids))
    monitor.start()
    try:
        runner = PhaseRunner(monitor, stack.auth)
        spec = LoadSpec(
            base_url=stack.api_url,
            path=path_for(stack.flow_id),
            mode="open",
            headers=stack.auth,
            rate=config.real_rate,
            duration_s=config.real_s,
        )
        cpu0 = monitor.cpu()
        phase, load = await runner.run("sustained", "e2e-livekit", spec)
        settled_s = await wait_settled(stack.database_url, load.session_ids, config.real_ready_deadline_s)
        cpu = cpu_delta(cpu0, monitor.cpu())
        peak_rss = {name: max(mb, phase.peak_rss_mb.get(name, 0.0)) for name, mb in monitor.reset_peaks().items()}
    finally:
        monitor.stop()
    delays, ready_per_s = await ready_delays_ms(stack.database_url, load.session_ids)
    accepted = len(load.session_ids)
    return {
        "accepted": accepted,
        "ready": len(delays),
        "statuses": dict(await statuses_of(stack.database_url, load.session_ids)),
        "settled_after_s": settled_s,
        "ready_per_s": ready_per_s,
        "post_to_ready_ms": summary(delays),
        "api_latency_ms": phase.latency_ms,
        "cpu_ms_per_session": {name: 1000 * s / accepted for name, s in cpu.items()} if accepted else {},
        "peak_rss_mb": peak_rss,
    }
