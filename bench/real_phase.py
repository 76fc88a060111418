"""End to end on a real livekit-server, one stack per agent job executor: frontends that join their rooms with the
real SDK (the agent speaks its greeting to them), sessions ready per second, POST -> ready, CPU per session per
process. Skipped, with the reason, when no real server can be had."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import structlog

from bench.config import BenchConfig
from bench.measure import ResourceMonitor, cpu_delta
from bench.observe import ready_delays_ms, statuses_of, wait_settled
from bench.phases import path_for
from bench.real_livekit import real_livekit_side, running_real_stack
from bench.stack import Stack
from bench.stats import summary
from devstack.readiness import NotReadyError
from devstack.stack import StackExitedError

log = structlog.get_logger("bench")

# Every session here is a WebRTC join on both sides and a spoken greeting (~0.8 s of CPU per session on 2 cores):
# the offered load is capped so the phase finishes in about a minute per executor whatever the profile asks.
MAX_RATE = 2.0
MAX_DURATION_S = 20.0
FRONTEND_READY_TIMEOUT_S = 30.0  # per frontend: POST to agent.ready on its data channel
JOBS_END_DEADLINE_S = 30.0  # after the last frontend left, for every job to end (its rejoin grace is short)


async def real_livekit_phase(config: BenchConfig, work_dir: Path) -> dict[str, Any]:
    """``real_rate`` sessions/s for ``real_s`` seconds on a real server, once per executor; or why it was skipped."""
    rate, duration_s = min(config.real_rate, MAX_RATE), min(config.real_s, MAX_DURATION_S)
    out: dict[str, Any] = {"rate": rate, "duration_s": duration_s, "runs": {}}
    for executor in config.real_executors:
        side = real_livekit_side(os.environ, allow_build=config.real_build)
        if isinstance(side, str):
            log.info("phase_skipped", name="end to end on a real LiveKit server", reason=side)
            return {"skipped": side}
        out["server"] = side.reason
        log.info("phase", name="end to end on a real LiveKit server", executor=executor, rate=rate)
        log_dir = work_dir / f"logs-livekit-{executor}"
        try:
            async with running_real_stack(side, executor, log_dir) as stack:
                out["runs"][executor] = await _sustained(config, stack, rate, duration_s)
        except NotReadyError as exc:  # the simulator's results are kept; the report says why
            out["runs"][executor] = {"failed": failure_reason(exc, log_dir)}
    return out


def failure_reason(exc: NotReadyError, log_dir: Path, lines: int = 3) -> str:
    """The one-line reason a stack did not come up, with the last lines of the process that ended it: each process
    logs to its own file in ``log_dir`` (removed with the run's directory unless ``--keep-logs``), and livekit-server,
    for one, prints why it could not start and exits 0."""
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if not isinstance(exc, StackExitedError):
        return reason
    try:
        tail = (log_dir / f"{exc.exit.label}.log").read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return reason
    return f"{reason} (last lines: {' / '.join(line.strip() for line in tail)})" if tail else reason


async def _sustained(config: BenchConfig, stack: Stack, rate: float, duration_s: float) -> dict[str, Any]:
    """The offered rate of frontends that join their rooms (bench.real_frontends) for the duration, then every
    session settled and its job ended (bounded); POST -> ready from the sessions' records and from the frontends."""
    monitor = ResourceMonitor(dict(stack.pids))
    monitor.start()
    try:
        cpu0 = monitor.cpu()
        frontends = await run_frontends(stack, rate, duration_s)
        session_ids = [s["session_id"] for s in frontends["sessions"] if s.get("session_id")]
        settled_s = await wait_settled(stack.database_url, session_ids, config.real_ready_deadline_s)
        ended_s = await wait_jobs_ended(stack.database_url, session_ids, JOBS_END_DEADLINE_S)
        cpu = cpu_delta(cpu0, monitor.cpu())
        peak_rss = monitor.reset_peaks()
    finally:
        monitor.stop()
    delays, ready_per_s = await ready_delays_ms(stack.database_url, session_ids)
    accepted = len(session_ids)
    sessions = frontends["sessions"]
    seen = [s["ready_ms"] for s in sessions if s.get("ok")]
    return {
        "accepted": accepted,
        "ready": len(delays),
        "frontends": {
            "offered": frontends["offered"],
            "saw_ready": len(seen),
            "errors": dict(Counter(s["error"].split(":")[0] for s in sessions if s.get("error"))),
            "post_to_ready_ms": summary(seen),
            "join_ms": summary([s["join_ms"] for s in sessions if "join_ms" in s]),
        },
        "statuses": dict(await statuses_of(stack.database_url, session_ids)),
        "settled_after_s": settled_s,
        "jobs_ended_after_s": ended_s,
        "ready_per_s": ready_per_s,
        "post_to_ready_ms": summary(delays),
        "api_latency_ms": summary([s["post_ms"] for s in sessions if "post_ms" in s]),
        "cpu_ms_per_session": {name: 1000 * s / accepted for name, s in cpu.items()} if accepted else {},
        "peak_rss_mb": peak_rss,
    }


async def run_frontends(stack: Stack, rate: float, duration_s: float) -> dict[str, Any]:
    """Run bench.real_frontends (its own process, bounded in time) and return what it printed."""
    argv = [
        sys.executable, "-m", "bench.real_frontends", "--api-url", stack.api_url, "--path", path_for(stack.flow_id),
        "--headers", json.dumps(stack.auth), "--rate", f"{rate:g}", "--duration-s", f"{duration_s:g}",
        "--ready-timeout-s", f"{FRONTEND_READY_TIMEOUT_S:g}",
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(duration_s + FRONTEND_READY_TIMEOUT_S + 60):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise NotReadyError("the real-LiveKit frontends did not finish in time") from None
    if proc.returncode != 0:
        raise NotReadyError(f"the real-LiveKit frontends failed (exit {proc.returncode})")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def wait_jobs_ended(database_url: str, session_ids: list[str], deadline_s: float) -> float | None:
    """Wait until no session is still ``ready`` (its frontend left: the agent's job ends and says so), so the CPU
    measured includes every job's end; the seconds that took, None past the deadline."""
    started = time.monotonic()
    while (await statuses_of(database_url, session_ids))["ready"]:
        if time.monotonic() - started > deadline_s:
            return None
        await asyncio.sleep(0.5)
    return time.monotonic() - started
