"""The issue's targets, checked against the results: met or missed, and by how much.

``done_when``: issue #21's "Done when", in its order (the headline); ``other_targets``: the earlier targets the
report keeps checking (pipeline overhead, memory, the whole pipeline's CPU). A figure a run lacks is "not measured".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.figures import (
    MEMORY_SERVICES,
    api_p99,
    api_vs_ceiling,
    cpu_ms,
    cpu_total,
    dig,
    dispatcher_and_store,
    number,
    phase,
)

MAX_RSS_MB = 150.0
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Check:
    """One target: what it asks, what was measured, whether it was met, and the gap when not."""

    target: str
    measured: str
    met: bool
    gap: str = ""

    @property
    def verdict(self) -> str:
        """ "met" or "MISSED (gap)"."""
        return "met" if self.met else f"**MISSED** ({self.gap})"


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """API vs ceiling and API vs polling (throughput), polling vs API (p99 at the same offered rate)."""
    api, polling = phase(results, "api", "closed"), phase(results, "polling", "closed")
    out: dict[str, Any] = {
        "api_vs_ceiling": api_vs_ceiling(results) or 0.0,
        "api_vs_polling": api["throughput_rps"] / max(polling["throughput_rps"], 1e-9) if api and polling else 0.0,
        "polling_vs_api_p99": {},
    }
    for fraction in results["config"]["open_fractions"]:
        name = f"open-{int(fraction * 100)}%"
        a, p = phase(results, "api", name), phase(results, "polling", name)
        if a and p and a["latency_ms"].get("p99"):
            out["polling_vs_api_p99"][name] = p["latency_ms"]["p99"] / a["latency_ms"]["p99"]
    return out


def _at_most(name: str, value: float | None, limit: float, unit: str) -> Check:
    if value is None:
        return Check(name, NOT_MEASURED, False, "no samples")
    measured = f"{value:.1f} {unit}"
    if value <= limit:
        return Check(name, measured, True)
    return Check(name, measured, False, f"{value - limit:.1f} {unit} over, {100 * (value / limit - 1):.0f}% above")


def _ceiling_share(results: dict[str, Any]) -> Check:
    name = "API throughput >= 80% of the ceiling"
    share = api_vs_ceiling(results)
    if share is None:
        return Check(name, NOT_MEASURED, False, "no closed-loop phases")
    return Check(name, f"{100 * share:.0f}% of the ceiling", share >= 0.8, f"{100 * (0.8 - share):.0f} points short")


def _overload(results: dict[str, Any]) -> Check:
    name = "overload at 2x capacity answered with 503s, their p99 < 10 ms"
    overload = dig(results, "overload")
    if not isinstance(overload, dict):
        return Check(name, NOT_MEASURED, False, "no overload phase in this run")
    answers = overload.get("answers", {})
    refused, sent = answers.get("503", 0), overload.get("sent", 0)
    p99 = number(overload, "latency_ms", "503", "p99")
    measured = f"{refused} of {sent} answered 503" + (f", p99 {p99:.1f} ms" if p99 is not None else "")
    other = f"202 p99 {_or_na(number(overload, 'latency_ms', '202', 'p99'))} ms, timeouts {answers.get('timeout', 0)}"
    if not refused or p99 is None:
        return Check(name, f"{measured}; {other}", False, "no 503: the API queued instead of refusing")
    return Check(name, measured, p99 < 10.0, f"503 p99 {p99 - 10.0:.1f} ms over")


def _burst(results: dict[str, Any]) -> Check:
    burst = results["burst"]
    all_ready = burst["all_ready_s"] is not None and burst["lost"] == 0 and burst["accepted"] == burst["requested"]
    duplicated = duplicated_agents(burst)
    replaced = burst.get("replaced_agent_jobs", 0)  # absent from reports before replacements were told apart
    measured = (
        f"{burst['accepted']}/{burst['requested']} accepted"
        f"{_retried(burst)}, ready after "
        f"{'never' if burst['all_ready_s'] is None else format(burst['all_ready_s'], '.1f') + ' s'}, "
        f"lost {burst['lost']}, duplicated {duplicated}"
        + (f" ({replaced} jobs replaced after the first had ended)" if replaced else "")
    )
    return Check(
        f"burst of {burst['requested']:,}: all ready, 0 lost, 0 duplicated",
        measured,
        all_ready and duplicated == 0,
        f"lost {burst['lost']}, duplicated {duplicated}",
    )


def duplicated_agents(phase: dict[str, Any]) -> int:
    """Two agents for one session at once, as the simulator saw it: a second job of the agent assigned to a room
    while the first still ran, or a second agent participant joining while the first was in the room. (Reports
    before replacements were told apart counted every second job here, a replacement of a job that never ran too.)"""
    return int(phase.get("duplicated_agent_jobs", 0)) + int(phase.get("duplicated_agents_in_room", 0))


def _retried(burst: dict[str, Any]) -> str:
    retried = burst.get("retried_after_503", 0)  # absent from reports before the burst's clients retried
    return f" ({retried} after a 503 and its Retry-After)" if retried else ""


def _or_na(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def done_when(results: dict[str, Any]) -> list[Check]:
    """Issue #21's "Done when", in its order."""
    store = dispatcher_and_store(cpu_ms(results, "e2e"))
    return [
        _ceiling_share(results),
        _at_most("API p99 at 50% of the ceiling's rate <= 15 ms", api_p99(results, "open-50%"), 15.0, "ms"),
        _at_most("dispatcher + session store <= 5 ms CPU per session (sustained)", store, 5.0, "ms"),
        _overload(results),
        _burst(results),
    ]


def other_targets(results: dict[str, Any]) -> list[Check]:
    """The whole pipeline's CPU (issue #21's aim), the pipeline's overhead and the services' memory."""
    rate = number(results, "e2e", "rate") or 0.0
    total = cpu_total(cpu_ms(results, "e2e"))
    p50, p99 = (number(results, "e2e", "overhead_ms", q) for q in ("p50", "p99"))
    checks = [
        _at_most("whole pipeline <= 30 ms CPU per session (sustained)", total, 30.0, "ms"),
        _at_most(f"pipeline overhead p50 <= 25 ms at {rate:.0f}/s", p50, 25.0, "ms"),
        _at_most(f"pipeline overhead p99 <= 100 ms at {rate:.0f}/s", p99, 100.0, "ms"),
    ]
    for service in MEMORY_SERVICES:
        rss = number(results, "peak_rss_mb", service)
        checks.append(_at_most(f"{service} peak RSS < {MAX_RSS_MB:.0f} MB", rss, MAX_RSS_MB, "MB"))
    return checks


def evaluate(results: dict[str, Any]) -> list[Check]:
    """Every target: the "Done when" ones first."""
    return done_when(results) + other_targets(results)
