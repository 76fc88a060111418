"""The report's headline figures: CPU ms per session per process, sessions ready per second at saturation, and the
overload phase's answers. Each part reads the results through bench.figures, so a figure a run lacks shows "n/a"."""

from __future__ import annotations

from typing import Any

from bench.figures import PROCESSES, cpu_ms, cpu_total, dig, dispatcher_and_store, number, phase
from bench.overload import ANSWERS

NA = "n/a"
LATE_GENERATOR_MS = 10.0  # the 503s' p99 target: a generator running later than this cannot measure it


def fmt(value: float | None, digits: int = 1) -> str:
    """A number, or "n/a"."""
    return NA if value is None else f"{value:.{digits}f}"


def _after(seconds: float | None, since: str) -> str:
    return "not within the deadline" if seconds is None else f"{seconds:.1f} s {since}"


def _per_s(value: float | None) -> str:
    return NA if value is None else f"{value:.1f}/s"


def key_line(results: dict[str, Any]) -> str:
    """Sessions ready per second at saturation (the pipeline with a backlog) and the API against its ceiling."""
    api = number(phase(results, "api", "closed"), "throughput_rps")
    ceiling = number(phase(results, "ceiling", "closed"), "throughput_rps")
    share = f"{100 * api / ceiling:.0f}%" if api is not None and ceiling else NA
    return (
        f"**Sessions ready per second at saturation: {fmt(number(results, 'e2e', 'ready_per_s_saturated'))}** "
        f"(the sustained phase's backlog; burst: {_per_s(number(results, 'burst', 'ready_per_s_saturated'))}; "
        "the middle 80% of the sessions' ready times, without the pipeline filling and draining). "
        f"API closed loop {fmt(api, 0)} req/s = {share} of the ceiling's {fmt(ceiling, 0)}. "
        "Where the difference goes, measured: docs/performance.md."
    )


def cpu_table(results: dict[str, Any]) -> str:
    """CPU ms per session per process in the sustained phase and the burst, with each process's idle rate."""
    e2e, burst = cpu_ms(results, "e2e"), cpu_ms(results, "burst")
    idle = dig(results, "idle_cpu_ms_per_s") or {}
    sustained = f"sustained ({fmt(number(results, 'e2e', 'rate'), 0)}/s, {dig(results, 'e2e', 'accepted')} sessions)"
    rows = [
        "CPU ms per session per process: psutil CPU time (user + system) of each process and its children, from "
        "the phase's first request until its sessions ended and the pipeline was idle again, over the sessions "
        "accepted.",
        "",
        f"| process | {sustained} | burst ({dig(results, 'burst', 'accepted')} sessions) | idle, ms per s |",
        "|---|---|---|---|",
    ]
    rows += [f"| {n} | {fmt(e2e.get(n))} | {fmt(burst.get(n))} | {fmt(number(idle, n))} |" for n in PROCESSES]
    idle_total = sum(v for n in PROCESSES if (v := number(idle, n)) is not None) if idle else None
    rows += [
        f"| dispatcher + session_store | {fmt(dispatcher_and_store(e2e))} | {fmt(dispatcher_and_store(burst))} | |",
        f"| **total** | **{fmt(cpu_total(e2e))}** | **{fmt(cpu_total(burst))}** | {fmt(idle_total)} |",
    ]
    total, cores = cpu_total(e2e), dig(results, "machine_before", "cpus")
    notes = []
    if total and isinstance(cores, int):
        notes.append(f"At the sustained total, {cores} cores serve at most ~{1000 * cores / total:.0f} sessions/s.")
    if isinstance(dig(results, "e2e"), dict) and "quiet_after_s" in results["e2e"]:
        quiet, ended = number(results, "e2e", "quiet_after_s"), number(results, "e2e", "ended_after_s")
        notes.append(
            f"The sustained window closed once its sessions had ended ({_after(ended, 'after all were ready')}) "
            f"and the pipeline was idle again ({_after(quiet, 'later')})."
        )
    window, accepted = number(results, "e2e", "cpu_window_s"), number(results, "e2e", "accepted")
    if idle_total is not None and window and accepted:
        notes.append(
            f"Idle, the pipeline uses {idle_total:.0f} ms of CPU per second (polls, heartbeats): over the sustained "
            f"phase's {window:.1f} s window that is ~{idle_total * window / accepted:.1f} ms of each session's total."
        )
    return "\n".join(rows + (["", *notes] if notes else []))


def overload_section(results: dict[str, Any]) -> str:
    """The API at twice its capacity: answers per class with their latency, its memory, the generator's load."""
    title = "## Overload: the API at 2x its capacity"
    o = dig(results, "overload")
    if not isinstance(o, dict):
        return f"{title}\n\n(not run: results of an older benchmark)"
    sent = o.get("sent") or 0
    rows = [
        f"Offered {fmt(o.get('rate'), 0)}/s ({fmt(o.get('rate', 0) / max(o.get('capacity_rps') or 1, 1e-9), 1)}x "
        f"the API's closed-loop {fmt(o.get('capacity_rps'), 0)}/s) for {o.get('duration_s')} s, open loop, at most "
        f"{o.get('max_in_flight')} requests in flight, client timeout {o.get('timeout_s')} s; the pipeline paused.",
        "",
        "| answer | count | share | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|",
    ]
    for answer in ANSWERS:
        count = dig(o, "answers", answer) or 0
        lat = dig(o, "latency_ms", answer) or {}
        share = f"{100 * count / sent:.1f}%" if sent else NA
        rows.append(
            f"| {answer} | {count} | {share} | {fmt(number(lat, 'p50'))} | {fmt(number(lat, 'p99'))} "
            f"| {fmt(number(lat, 'max'))} |"
        )
    loadgen = number(o, "loadgen_cpu_fraction") or 0.0
    rows += [
        "",
        f"API peak RSS {fmt(number(o, 'api_peak_rss_mb'), 0)} MB, API CPU {fmt(number(o, 'api_cpu_s'))} s; "
        f"idle again {fmt(number(o, 'api_quiet_after_s'))} s after the last answer. The generator sent {sent} "
        f"({fmt(number(o, 'sent_per_s'), 0)}/s) using {100 * loadgen:.0f}% of a core; {o.get('slot_waits', 0)} "
        f"requests waited for one of its {o.get('max_in_flight')} slots (latest start "
        f"{fmt(number(o, 'max_start_lag_ms'), 0)} ms after its schedule, counted in its latency).",
    ]
    lag = dig(o, "loadgen_loop_lag_ms") or {}
    if lag:
        rows[-1] += (
            f" Its own event loop ran late by p50 {fmt(number(lag, 'p50'))} / p99 {fmt(number(lag, 'p99'))} / max "
            f"{fmt(number(lag, 'max'))} ms (included in the latencies above)."
        )
    if loadgen >= 0.9 or (number(lag, "p99") or 0.0) > LATE_GENERATOR_MS:
        rows.append(
            "**The generator was at its own limit (its CPU or its loop's lag): these figures understate the offered "
            "load or overstate the latencies.**"
        )
    return title + "\n\n" + "\n".join(rows)
