"""The whole benchmark in one run: ceiling, API, end to end, burst, polling baseline (on the LiveKit simulator),
then end to end on a real livekit-server; returns the results."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import structlog

from bench.config import BenchConfig
from bench.figures import SCHEMA
from bench.load_spec import LoadSpec
from bench.measure import ResourceMonitor, cpu_delta, machine
from bench.observe import ready_delays_ms, sim_counters, status_counts, statuses_of, wait_settled
from bench.overload import overload_phase
from bench.phases import PhaseRunner, path_for, per_thousand
from bench.real_phase import real_livekit_phase
from bench.settle import idle_rates, settled_cpu
from bench.stack import Stack, StackOptions, pipeline_paused, running_stack
from bench.stats import summary

log = structlog.get_logger("bench")
BURST_RETRIES = 5  # a burst client refused with 503 + Retry-After sends again, this many times at most


async def run_benchmark(config: BenchConfig, work_dir: Path) -> dict[str, Any]:
    """Start the stack, run every phase, stop the stack; the results as one JSON-able dict."""
    options = StackOptions(agent_delay_ms=config.agent_delay_ms, log_dir=work_dir / "logs")
    results: dict[str, Any] = {"schema": SCHEMA, "profile": config.name, "machine_before": machine()}
    results["config"] = vars(config)
    started = time.monotonic()
    async with running_stack(options) as stack:
        monitor = ResourceMonitor(dict(stack.pids))
        monitor.start()
        try:
            runner = PhaseRunner(monitor, stack.auth, work_dir if config.profile else None)
            results.update(await _phases(config, stack, runner))
            results["phases"] = [phase.to_json() for phase in runner.results]
            results["samples"] = {f"{p.target}:{p.name}": p.latencies_sample for p in runner.results}
            results["peak_rss_mb"] = {name: value / 2**20 for name, value in monitor.overall_peaks.items()}
        finally:
            monitor.stop()
    # After the simulator's stack is gone: the real server's stack has the machine to itself
    results["real_livekit"] = await real_livekit_phase(config, work_dir)
    results["machine_after"] = machine()
    results["duration_s"] = time.monotonic() - started
    return results


def _spec(url: str, stack: Stack, mode: str, **kwargs: Any) -> LoadSpec:
    return LoadSpec(base_url=url, path=path_for(stack.flow_id), mode=mode, headers=stack.auth, **kwargs)


async def _phases(config: BenchConfig, stack: Stack, runner: PhaseRunner) -> dict[str, Any]:
    out: dict[str, Any] = {}
    closed = {"duration_s": config.closed_s, "concurrency": config.concurrency}
    async with pipeline_paused(stack):  # the API alone on the machine, as the ceiling is
        for target, url in (("warmup-ceiling", stack.ceiling_url), ("warmup-api", stack.api_url)):
            await runner.run("warmup", target, _spec(url, stack, "closed", duration_s=config.warmup_s, concurrency=16))
        log.info("phase", name="ceiling closed loop")
        ceiling, _ = await runner.run("closed", "ceiling", _spec(stack.ceiling_url, stack, "closed", **closed))
        log.info("phase", name="api closed loop", ceiling_rps=round(ceiling.throughput_rps))
        api, load = await runner.run("closed", "api", _spec(stack.api_url, stack, "closed", **closed))
        out["api_closed_sessions"] = len(load.session_ids)
        if config.profile:  # a run of its own: py-spy's CPU must not count against the API beside the ceiling
            profiled = {**closed, "duration_s": min(config.closed_s, 5.0)}
            spec = _spec(stack.api_url, stack, "closed", **profiled)
            await runner.run("closed-profiled", "api", spec, profile={"api": stack.pids["api"]})
        for fraction in config.open_fractions:
            rate = fraction * ceiling.throughput_rps
            log.info("phase", name="api open loop", rate=round(rate))
            spec = _spec(stack.api_url, stack, "open", rate=rate, duration_s=config.open_s)
            await runner.run(f"open-{int(fraction * 100)}%", "api", spec)
        out["overload"] = await overload_phase(config, runner, stack.api_url, stack.flow_id, api.throughput_rps)
    # What the pipeline's processes use with nothing to do (polls, heartbeats): the end-to-end and burst windows'
    # CPU includes it; its rate tells how much of a session's share is background
    out["idle_cpu_ms_per_s"] = await idle_rates(runner.monitor, config.idle_s)
    out["e2e"] = await _e2e(config, stack, runner, out["idle_cpu_ms_per_s"])
    out["e2e_unsaturated"] = await _e2e_unsaturated(config, stack, runner, out["e2e"]["ready_per_s"])
    out["burst"] = await _burst(config, stack, runner, out["idle_cpu_ms_per_s"])
    # Last: the old design's rooms and agent jobs outlive its timed-out requests and would load later phases.
    async with pipeline_paused(stack):
        log.info("phase", name="polling baseline")
        await runner.run("closed", "polling", _spec(stack.polling_url, stack, "closed", **closed))
        for fraction in config.polling_fractions:
            rate = fraction * ceiling.throughput_rps
            log.info("phase", name="polling open loop", rate=round(rate))
            spec = _spec(stack.polling_url, stack, "open", rate=rate, duration_s=config.polling_open_s)
            await runner.run(f"open-{int(fraction * 100)}%", "polling", spec)
    return out


async def _e2e(config: BenchConfig, stack: Stack, runner: PhaseRunner, idle: dict[str, float]) -> dict[str, Any]:
    """The target rate for e2e_s seconds; then wait until every session settled; request -> ready per session.

    Times come from the sessions' own records (the API's request time, the agent's ready time), so a
    backlog shows as it is instead of as client timeouts; ready/s is what the pipeline sustained, and at
    saturation the rate of the backlog's middle 80% (without the pipeline filling and draining).
    """
    log.info("phase", name="end to end", rate=config.e2e_rate)
    spec = _spec(stack.api_url, stack, "open", rate=config.e2e_rate, duration_s=config.e2e_s)
    profile = {"dispatcher": stack.pids["dispatcher"], "agent": stack.pids["agent"]}
    counters0 = await sim_counters(stack.livekit_url)
    cpu0, started = runner.monitor.cpu(), time.monotonic()
    phase, load = await runner.run("sustained", "e2e", spec, profile=profile)
    settled_s = await wait_settled(stack.database_url, load.session_ids, config.e2e_ready_deadline_s)
    after = await settled_cpu(config, stack.database_url, runner.monitor, load.session_ids, idle)
    cpu, window_s = cpu_delta(cpu0, runner.monitor.cpu()), time.monotonic() - started
    delays, ready_per_s = await ready_delays_ms(stack.database_url, load.session_ids)
    statuses = await statuses_of(stack.database_url, load.session_ids)
    churn = job_churn(counters0, await sim_counters(stack.livekit_url))
    overhead = [ms - config.agent_delay_ms for ms in delays]
    runner.results[-1].extra["overhead_sample"] = overhead
    return {
        "rate": config.e2e_rate,
        "duration_s": config.e2e_s,
        "accepted": len(load.session_ids),
        "ready": len(delays),
        "statuses": dict(statuses),
        "settled_after_s": settled_s,
        "ready_per_s": ready_per_s,
        "post_to_ready_ms": summary(delays),
        "overhead_ms": summary(overhead),
        "cpu_s_per_1000": per_thousand(cpu, len(load.session_ids)),
        "cpu_window_s": window_s,
        "api_latency_ms": phase.latency_ms,
        **churn,
        **after,
    }


def job_churn(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The simulator's job counts between two reads: jobs assigned, jobs dropped (no worker took them: each one a
    re-dispatch later), duplicates (a second job of the agent assigned to a room while its first still ran, or a
    second agent participant joining while the first was in the room: two agents for one session at once) and
    replacements (a second job once the first had ended: the watchdog replacing a job that never started)."""

    def delta(name: str) -> int:
        return after.get(name, 0) - before.get(name, 0)

    return {
        "agent_jobs_assigned": delta("jobs_assigned"),
        "sim_jobs_dropped": delta("jobs_dropped"),
        "duplicated_agent_jobs": delta("jobs_duplicated"),
        "duplicated_agents_in_room": delta("agents_duplicated"),
        "replaced_agent_jobs": delta("jobs_replaced"),
    }


async def _e2e_unsaturated(
    config: BenchConfig, stack: Stack, runner: PhaseRunner, capacity_per_s: float
) -> dict[str, Any]:
    """Half of the rate the pipeline sustained above, each session followed over SSE: the overhead unqueued."""
    rate = max(1.0, min(config.e2e_rate, 0.5 * capacity_per_s))
    log.info("phase", name="end to end below capacity", rate=round(rate, 1))
    spec = _spec(stack.api_url, stack, "open", rate=rate, duration_s=config.e2e_unsaturated_s, follow=True)
    phase, load = await runner.run("below-capacity", "e2e", spec)
    overhead = [ms - config.agent_delay_ms for ms in load.ready_ms]
    return {
        "rate": rate,
        "duration_s": config.e2e_unsaturated_s,
        "accepted": phase.statuses.get("202", 0),
        "ready": len(load.ready_ms),
        "not_ready": load.follow_failures,
        "post_to_ready_ms": summary(load.ready_ms),
        "overhead_ms": summary(overhead),
    }


async def _burst(config: BenchConfig, stack: Stack, runner: PhaseRunner, idle: dict[str, float]) -> dict[str, Any]:
    """``burst`` sessions as fast as the API takes them; then wait until all are ready; lost and duplicated."""
    log.info("phase", name="burst", sessions=config.burst)
    counters0 = await sim_counters(stack.livekit_url)
    cpu0 = runner.monitor.cpu()
    started = time.monotonic()
    # Its clients do what the API asks of a refused one (503 + Retry-After: come back then), as a real burst's would.
    spec = _spec(
        stack.api_url,
        stack,
        "closed",
        duration_s=3600,
        concurrency=config.concurrency,
        count=config.burst,
        retry_refused=BURST_RETRIES,
    )
    profile = {"dispatcher": stack.pids["dispatcher"], "session_store": stack.pids["session_store"]}
    phase, load = await runner.run("burst", "burst", spec, profile=profile)
    accepted = len(load.session_ids)
    settled_s = await wait_settled(stack.database_url, load.session_ids, config.burst_ready_deadline_s)
    delays, ready_per_s = await ready_delays_ms(stack.database_url, load.session_ids)
    all_ready_s = time.monotonic() - started if settled_s is not None and len(delays) == accepted else None
    after = await settled_cpu(config, stack.database_url, runner.monitor, load.session_ids, idle)
    cpu, window_s = cpu_delta(cpu0, runner.monitor.cpu()), time.monotonic() - started
    phase.peak_rss_mb = {k: max(v, phase.peak_rss_mb.get(k, 0.0)) for k, v in runner.monitor.reset_peaks().items()}
    statuses = await statuses_of(stack.database_url, load.session_ids)
    churn = job_churn(counters0, await sim_counters(stack.livekit_url))
    rows = sum((await status_counts(stack.database_url, stack.flow_id)).values())
    return {
        "requested": config.burst,
        "accepted": accepted,
        "retried_after_503": load.retried,
        "api_latency_ms": phase.latency_ms,
        "api_throughput_rps": phase.throughput_rps,
        "all_ready_s": all_ready_s,
        "statuses": dict(statuses),
        "ready": len(delays),
        "ready_per_s": ready_per_s,
        "lost": accepted - len(delays),  # never became ready (still open, failed or expired)
        **churn,
        "rows_for_flow": rows,
        "cpu_s_per_1000": per_thousand(cpu, accepted),
        "cpu_window_s": window_s,
        "peak_rss_mb": phase.peak_rss_mb,
        **after,
    }
