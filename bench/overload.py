"""The overload phase: the API offered twice what it served in the closed loop, open loop, the pipeline paused.

Each answer is classed (202, 503, 429, another HTTP status, a client timeout, a connection error) with its class's
latency percentiles, so an in-flight cap shows as fast 503s and its absence as latency growing with the queue; the
API's peak RSS says whether memory stays bounded. The generator's own CPU and how often it waited for one of its
``max_in_flight`` slots say whether it, not the API, was the limit.
"""

from __future__ import annotations

from typing import Any

import structlog

from bench.config import BenchConfig
from bench.load_spec import LoadResult, LoadSpec
from bench.measure import wait_quiet
from bench.phases import PhaseResult, PhaseRunner, path_for
from bench.stats import summary

log = structlog.get_logger("bench")

ANSWERS = ("202", "503", "429", "other HTTP", "timeout", "error")


def answer_class(status: str) -> str:
    """The class of one answer as the load generator records it (an HTTP status, or an exception's name)."""
    if status in ("202", "503", "429"):
        return status
    if status.isdigit():
        return "other HTTP"
    return "timeout" if "Timeout" in status else "error"


def by_class(latencies_by_status: dict[str, list[float]]) -> dict[str, list[float]]:
    """The latencies (ms) of every answer class that occurred."""
    classes: dict[str, list[float]] = {}
    for status, latencies in latencies_by_status.items():
        classes.setdefault(answer_class(status), []).extend(latencies)
    return classes


def overload_results(spec: LoadSpec, capacity_rps: float, phase: PhaseResult, load: LoadResult) -> dict[str, Any]:
    """What the overload phase reports: answers and latency per class, the API's memory and CPU, the generator's."""
    classes = by_class(load.latencies_by_status)
    sent = len(load.latencies_ms)
    return {
        "capacity_rps": capacity_rps,
        "rate": spec.rate,
        "duration_s": spec.duration_s,
        "timeout_s": spec.timeout_s,
        "max_in_flight": spec.max_in_flight,
        "sent": sent,
        "sent_per_s": sent / load.sending_s if load.sending_s else None,  # what the API was actually offered
        "answers": {answer: len(classes.get(answer, [])) for answer in ANSWERS},
        "statuses": dict(load.statuses),
        "latency_ms": {answer: summary(latencies) for answer, latencies in classes.items()},
        "api_peak_rss_mb": phase.peak_rss_mb.get("api"),
        "api_cpu_s": phase.cpu_s.get("api"),
        "loadgen_cpu_fraction": phase.loadgen_cpu_fraction,
        "slot_waits": load.slot_waits,
        "max_start_lag_ms": load.max_start_lag_ms,
        "loadgen_loop_lag_ms": load.loop_lag_ms,
    }


async def overload_phase(
    config: BenchConfig, runner: PhaseRunner, api_url: str, flow_id: str, capacity_rps: float
) -> dict[str, Any]:
    """``overload_factor`` x ``capacity_rps`` for ``overload_s``; then wait (bounded) until the API is idle again,
    so requests it still works through do not land in the next phase."""
    rate = max(1.0, config.overload_factor * capacity_rps)
    log.info("phase", name="api overload", rate=round(rate))
    spec = LoadSpec(
        base_url=api_url,
        path=path_for(flow_id),
        mode="open",
        headers=runner.headers,
        rate=rate,
        duration_s=config.overload_s,
        timeout_s=config.overload_timeout_s,
        max_in_flight=config.overload_max_in_flight,
    )
    phase, load = await runner.run("overload", "api", spec)
    out = overload_results(spec, capacity_rps, phase, load)
    out["api_quiet_after_s"] = await wait_quiet(runner.monitor, ("api",), deadline_s=config.overload_timeout_s + 10)
    return out
