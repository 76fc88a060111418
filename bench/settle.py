"""Where a phase's CPU window ends, and what the pipeline costs with nothing to do.

A session's CPU is counted from its request until it ended and the pipeline is idle again, so its ending (the
room's closing, its webhooks) is inside its own phase's window, not in the next phase's.
"""

from __future__ import annotations

from typing import Any

from bench.config import BenchConfig
from bench.figures import PROCESSES
from bench.measure import ResourceMonitor, cpu_rates, wait_quiet
from bench.observe import ready_epochs, wait_ended
from bench.stats import steady_rate


async def idle_rates(monitor: ResourceMonitor, idle_s: float) -> dict[str, float]:
    """Each process's CPU ms per second with nothing to do, once the catch-up after the pipeline resumed (timers,
    heartbeats) is over; one long window, as CPU times come in 10 ms ticks."""
    await wait_quiet(monitor, PROCESSES, deadline_s=10.0)
    return await cpu_rates(monitor, idle_s)


async def settled_cpu(
    config: BenchConfig,
    database_url: str,
    monitor: ResourceMonitor,
    session_ids: list[str],
    idle: dict[str, float],
) -> dict[str, Any]:
    """Once the sessions settled: wait (bounded) until they ended and the pipeline is idle again; when that was,
    and the sessions ready per second at saturation (the middle 80% of their ready times)."""
    ended_s = await wait_ended(database_url, session_ids, config.quiet_deadline_s)
    quiet_s = await wait_quiet(monitor, PROCESSES, idle, config.quiet_deadline_s)
    return {
        "ended_after_s": ended_s,
        "quiet_after_s": quiet_s,
        "ready_per_s_saturated": steady_rate(await ready_epochs(database_url, session_ids)),
    }
