"""The report's part about the real livekit-server: a headline line and a section beside the simulator's numbers."""

from __future__ import annotations

import math
from typing import Any

TITLE = "## End to end on a real LiveKit server"
# the processes of one session's path; the simulator's stand-in for livekit_server is livekit_sim
PROCESSES = ("api", "dispatcher", "session_store", "agent", "livekit_server", "redis", "postgres")


def _ms(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.0f}"


def _latencies(run: dict[str, Any]) -> str:
    lat = run["post_to_ready_ms"]
    return " / ".join(_ms(lat.get(q)) for q in ("p50", "p95", "p99"))


def _frontends(run: dict[str, Any]) -> str:
    seen = run.get("frontends")
    if seen is None:  # results of an older benchmark: nobody joined
        return "none joined"
    lat = seen["post_to_ready_ms"]
    errors = ", ".join(f"{k} {v}" for k, v in seen["errors"].items()) or "none"
    return f"{seen['saw_ready']}/{seen['offered']}, {_ms(lat.get('p50'))} / {_ms(lat.get('p99'))}, {errors}"


def _successful(real: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {executor: run for executor, run in real.get("runs", {}).items() if "failed" not in run}


def real_headline(results: dict[str, Any]) -> str:
    """One line: the real server's ready/s and POST -> ready per executor, or why there are none."""
    real = results.get("real_livekit")
    if real is None:
        return ""
    if "skipped" in real:
        return f"Real LiveKit phase skipped: {real['skipped']}."
    runs = [
        f"{executor} executor {run['ready_per_s']:.1f} ready/s, POST→ready p50/p95/p99 {_latencies(run)} ms"
        for executor, run in _successful(real).items()
    ]
    failed = [f"{name} executor failed ({run['failed']})" for name, run in real["runs"].items() if "failed" in run]
    return f"Real LiveKit (agent on WebRTC) at {real['rate']:g}/s for {real['duration_s']:g} s: " + "; ".join(
        runs + failed
    )


def real_section(results: dict[str, Any]) -> str:
    """The section: what ran, one row per executor, CPU per session per process next to the simulator's."""
    real = results.get("real_livekit")
    if real is None:
        return f"{TITLE}\n\n(not run: results of an older benchmark)"
    if "skipped" in real:
        return f"{TITLE}\n\nskipped: {real['skipped']}"
    rows = [
        "| job executor | accepted | ready | ready /s | POST→ready p50 / p95 / p99 ms | settled after s | statuses "
        "| frontends: agent.ready seen, POST→agent.ready p50 / p99 ms, errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for executor, run in real["runs"].items():
        if "failed" in run:
            rows.append(f"| {executor} | failed: {run['failed']} | | | | | | |")
            continue
        settled = run["settled_after_s"]
        rows.append(
            f"| {executor} | {run['accepted']} | {run['ready']} | {run['ready_per_s']:.1f} | {_latencies(run)} "
            f"| {'not within the deadline' if settled is None else f'{settled:.1f}'} | {run['statuses']} "
            f"| {_frontends(run)} |"
        )
    intro = (
        f"{TITLE}\n\n{real['server']}; the agent joins each room over WebRTC (`AGENT_ROOM_BACKEND=livekit`), "
        f"offered {real['rate']:g} sessions/s for {real['duration_s']:g} s by frontends that join their rooms with "
        "livekit.rtc (bench.real_frontends), subscribe to the agent's audio, wait for agent.ready on the data "
        "channel and leave: the agent waits for its user, starts its AgentSession and speaks the greeting (built-in "
        "eSpeak TTS). Each session's times from its own record (no simulated start-up delay: POST→ready is the real "
        "dispatch, WebRTC join, the frontend's join and the greeting's playout)."
    )
    return "\n\n".join([intro, "\n".join(rows), _cpu_table(results, _successful(real))])


def _cpu_table(results: dict[str, Any], runs: dict[str, dict[str, Any]]) -> str:
    if not runs:
        return ""
    simulated = results.get("e2e", {}).get("cpu_s_per_1000", {})  # s per 1,000 = ms per session
    head = "| process | " + " | ".join(f"real LiveKit, {e} executor" for e in runs) + " | simulator (sustained) |"
    rows = [
        "CPU ms per session (the offered load's whole run, settling included):",
        "",
        head,
        "|---" * (len(runs) + 2) + "|",
    ]
    for name in PROCESSES:
        sim_name = "livekit_sim" if name == "livekit_server" else name
        cells = " | ".join(f"{run['cpu_ms_per_session'].get(name, 0.0):.1f}" for run in runs.values())
        rows.append(f"| {name} | {cells} | {simulated.get(sim_name, 0.0):.1f} |")
    totals = [sum(run["cpu_ms_per_session"].get(n, 0.0) for n in PROCESSES) for run in runs.values()]
    sim_total = sum(simulated.get("livekit_sim" if n == "livekit_server" else n, 0.0) for n in PROCESSES)
    rows.append(f"| **total** | {' | '.join(f'**{t:.1f}**' for t in totals)} | **{sim_total:.1f}** |")
    cores = results["machine_before"]["cpus"]
    bounds = ", ".join(f"{e} executor ~{1000 * cores / t:.0f}/s" for e, t in zip(runs, totals, strict=True) if t)
    rows += ["", f"At that CPU per session, {cores} cores would serve at most: {bounds}."]
    return "\n".join(rows)
