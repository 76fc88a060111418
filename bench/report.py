"""The report: results JSON, a Markdown page with the headline table and ratios, a PNG of the latencies."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.figures import PROCESSES
from bench.report_headline import cpu_table, key_line, overload_section
from bench.report_real import real_headline, real_section
from bench.targets import Check, done_when, evaluate, other_targets, ratios


def _ms(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def _checks_table(checks: list[Check]) -> list[str]:
    return ["| target | measured | verdict |", "|---|---|---|"] + [
        f"| {c.target} | {c.measured} | {c.verdict} |" for c in checks
    ]


def headline(results: dict[str, Any]) -> str:
    """Issue #21's "Done when" (one line per target: measured, met or missed), sessions ready per second at
    saturation, CPU ms per session per process, the machine."""
    lines = ["Issue #21, done when:", "", *_checks_table(done_when(results)), "", key_line(results), ""]
    lines.append(cpu_table(results))
    m = results["machine_before"]
    lines.append("")
    lines.append(
        f"Machine: {m['cpus']} cores ({m['cpu_model']}), {m['memory_gb']} GB; load average before / after: "
        f"{m['load_average'][0]} / {results['machine_after']['load_average'][0]}; profile `{results['profile']}`, "
        f"agent start-up delay {results['config']['agent_delay_ms']} ms."
    )
    if real := real_headline(results):
        lines += ["", real]
    return "\n".join(lines)


def _phase_table(results: dict[str, Any]) -> str:
    rows = [
        "| target | phase | offered /s | served /s | p50 ms | p95 ms | p99 ms | max ms | answers | loadgen CPU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in results["phases"]:
        if p["target"].startswith("warmup"):
            continue
        lat = p["latency_ms"]
        offered = f"{p['offered_rate']:.0f}" if p["offered_rate"] else "closed"
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(p["statuses"].items()))
        rows.append(
            f"| {p['target']} | {p['name']} | {offered} | {p['throughput_rps']:.0f} | {_ms(lat.get('p50'))} "
            f"| {_ms(lat.get('p95'))} | {_ms(lat.get('p99'))} | {_ms(lat.get('max'))} | {answers} "
            f"| {100 * p['loadgen_cpu_fraction']:.0f}% |"
        )
    return "\n".join(rows)


def _resources(results: dict[str, Any]) -> str:
    e2e, burst = results["e2e"]["cpu_s_per_1000"], results["burst"]["cpu_s_per_1000"]
    rows = ["| service | peak RSS MB (whole run) | CPU s / 1,000 sessions (sustained) | (burst) |", "|---|---|---|---|"]
    for name, rss in sorted(results["peak_rss_mb"].items()):
        rows.append(f"| {name} | {rss:.0f} | {e2e.get(name, 0):.2f} | {burst.get(name, 0):.2f} |")
    return "\n".join(rows)


def _profiles(results: dict[str, Any]) -> str:
    parts: list[str] = []
    for p in results["phases"]:
        for label, top in p.get("extra", {}).get("profiles", {}).items():
            parts.append(f"**{label}** during `{p['target']} {p['name']}` (share of samples, innermost frame):\n")
            parts += [f"- {share:.1f}% `{name}`" for name, share in top["self"]]
            parts.append("")
    return "\n".join(parts) or "(no profiles: py-spy was not available or not allowed to attach)"


def _e2e_section(results: dict[str, Any]) -> str:
    e2e, below, delay = results["e2e"], results["e2e_unsaturated"], results["config"]["agent_delay_ms"]
    o, b = e2e["overhead_ms"], below["overhead_ms"]
    cpu_ms = sum(e2e["cpu_s_per_1000"].get(name, 0.0) for name in PROCESSES)  # s per 1,000 = ms per session
    cores = results["machine_before"]["cpus"]
    bound = 1000 * cores / cpu_ms if cpu_ms else 0.0
    per_service = ", ".join(f"{name} {e2e['cpu_s_per_1000'].get(name, 0.0):.0f}" for name in PROCESSES)
    return (
        f"## End to end\n\n**At {e2e['rate']:.0f}/s for {e2e['duration_s']:g} s** (request -> ready from the "
        f"sessions' records, minus the agent's {delay} ms): accepted {e2e['accepted']}, ready {e2e['ready']}, "
        f"statuses {e2e['statuses']}, all settled after {_ms(e2e['settled_after_s'])} s, LiveKit dropped "
        f"{e2e.get('sim_jobs_dropped', '-')} jobs, {_churn(e2e)}; "
        f"the pipeline made "
        f"**{e2e['ready_per_s']:.1f} sessions ready per second** from the first request to the last ready "
        f"({_ms(e2e.get('ready_per_s_saturated'))}/s at saturation, the backlog's middle 80%); "
        f"overhead p50/p95/p99 {_ms(o.get('p50'))} / "
        f"{_ms(o.get('p95'))} / {_ms(o.get('p99'))} ms (queueing included).\n\n"
        f"Why: the pipeline's processes used **{cpu_ms:.0f} ms of CPU per session** together "
        f"({per_service}), so {cores} cores "
        f"serve at most ~{bound:.0f} sessions/s; above that requests queue and the overhead is queueing time.\n\n"
        f"**Below capacity, at {below['rate']:.1f}/s for {below['duration_s']:.0f} s** (each session followed "
        f"over SSE): accepted {below['accepted']}, ready {below['ready']}, not ready {below['not_ready'] or 0}; "
        f"overhead p50/p95/p99 {_ms(b.get('p50'))} / {_ms(b.get('p95'))} / {_ms(b.get('p99'))} ms."
    )


def _churn(phase: dict[str, Any]) -> str:
    """Second agent jobs of one room, told apart: two at once (a duplicate) or one after the first ended."""
    return (
        f"duplicated agent jobs {phase.get('duplicated_agent_jobs', '-')} (two jobs of one room at once), agents "
        f"duplicated in a room {phase.get('duplicated_agents_in_room', '-')}, jobs replaced "
        f"{phase.get('replaced_agent_jobs', '-')} (a second job once the first had ended: the watchdog's re-dispatch "
        f"of a job whose agent never joined)"
    )


def markdown(results: dict[str, Any], plot_name: str) -> str:
    """The whole report."""
    burst, ratio = results["burst"], ratios(results)
    checks: list[Check] = evaluate(results)
    missed = [c for c in checks if not c.met]
    return "\n\n".join(
        [
            "# Benchmark: event-driven API vs ceiling vs polling baseline",
            "## Headline\n\n" + headline(results),
            "## Other targets\n\n" + "\n".join(_checks_table(other_targets(results))),
            "## Ratios\n\n"
            f"- API / ceiling throughput (closed loop): **{100 * ratio['api_vs_ceiling']:.0f}%**\n"
            f"- API / polling throughput (closed loop): **{ratio['api_vs_polling']:.1f}x**\n"
            f"- polling / API p99 latency at the same offered rates: "
            + ", ".join(f"{k}: **{v:.0f}x**" for k, v in ratio["polling_vs_api_p99"].items()),
            "## Every phase\n\n" + _phase_table(results),
            overload_section(results),
            _e2e_section(results),
            real_section(results),
            f"## Burst of {burst['requested']:,}\n\n"
            f"accepted {burst['accepted']} ({burst.get('retried_after_503', 0)} requests sent again after a 503 and "
            f"its Retry-After), ready {burst['ready']} ({burst['ready_per_s']:.1f}/s; "
            f"{_ms(burst.get('ready_per_s_saturated'))}/s at saturation), "
            f"all ready after {_ms(burst['all_ready_s'])} s, "
            f"statuses {burst['statuses']}, "
            f"lost {burst['lost']}, {_churn(burst)}, "
            f"jobs dropped by LiveKit {burst.get('sim_jobs_dropped', '-')}, "
            f"API {burst['api_throughput_rps']:.0f}/s with p99 {_ms(burst['api_latency_ms'].get('p99'))} ms.",
            "## Memory and CPU per service\n\n" + _resources(results),
            "## Where the time goes (py-spy)\n\n" + _profiles(results),
            "## Targets missed\n\n"
            + ("\n".join(f"- {c.target}: {c.measured} — {c.gap}" for c in missed) if missed else "none"),
            f"![latency distributions]({plot_name})",
            f"Run took {results['duration_s']:.0f} s. Raw numbers: `latest.json`.",
        ]
    )


def plot(results: dict[str, Any], path: Path) -> None:
    """Latency CDFs of every target and phase, log-scaled (small PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=80)
    for key, samples in results["samples"].items():
        if not samples or key.startswith("warmup"):
            continue
        ordered = sorted(samples)
        ys = [100 * (i + 1) / len(ordered) for i in range(len(ordered))]
        axis = axes[1] if key.startswith("polling") else axes[0]
        axis.plot(ordered, ys, label=key, linewidth=1)
    for axis, title in zip(axes, ("event-driven API and ceiling", "polling baseline"), strict=True):
        axis.set_xscale("log")
        axis.set_xlabel("latency ms (from scheduled send)")
        axis.set_ylabel("percentile")
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(results: dict[str, Any], out_dir: Path) -> Path:
    """Write latest.json, latest.md and latest.png into ``out_dir``; return the Markdown path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plot(results, out_dir / "latest.png")
    data = {k: v for k, v in results.items() if k != "samples"}
    for phase in data["phases"]:
        phase.get("extra", {}).pop("overhead_sample", None)
    (out_dir / "latest.json").write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    report = out_dir / "latest.md"
    report.write_text(markdown(results, "latest.png") + "\n", encoding="utf-8")
    return report
