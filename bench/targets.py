"""The issue's targets, checked against the results: met or missed, and by how much."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_RSS_MB = 150.0
MEMORY_SERVICES = ("api", "dispatcher", "session_store")


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


def phase(results: dict[str, Any], target: str, name: str) -> dict[str, Any] | None:
    """The phase of ``target`` named ``name``."""
    return next((p for p in results["phases"] if p["target"] == target and p["name"] == name), None)


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """API vs ceiling and API vs polling (throughput), polling vs API (p99 at the same offered rate)."""
    ceiling, api, polling = (phase(results, t, "closed") for t in ("ceiling", "api", "polling"))
    out: dict[str, Any] = {
        "api_vs_ceiling": api["throughput_rps"] / ceiling["throughput_rps"] if api and ceiling else 0.0,
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
        return Check(name, "not measured", False, "no samples")
    measured = f"{value:.1f} {unit}"
    if value <= limit:
        return Check(name, measured, True)
    return Check(name, measured, False, f"{value - limit:.1f} {unit} over, {100 * (value / limit - 1):.0f}% above")


def evaluate(results: dict[str, Any]) -> list[Check]:
    """Every target of the issue, in its order."""
    checks: list[Check] = []
    share = ratios(results)["api_vs_ceiling"]
    text = f"{100 * share:.0f}% of the ceiling"
    checks.append(
        Check("API throughput >= 80% of the ceiling", text, share >= 0.8, f"{100 * (0.8 - share):.0f} points short")
    )
    half = phase(results, "api", "open-50%")
    checks.append(_at_most("API p99 at 50% of the ceiling's rate <= 15 ms", _p(half, "p99"), 15.0, "ms"))
    overhead = results["e2e"]["overhead_ms"]
    rate = results["e2e"]["rate"]
    checks.append(_at_most(f"pipeline overhead p50 <= 25 ms at {rate:.0f}/s", overhead.get("p50"), 25.0, "ms"))
    checks.append(_at_most(f"pipeline overhead p99 <= 100 ms at {rate:.0f}/s", overhead.get("p99"), 100.0, "ms"))
    burst = results["burst"]
    all_ready = burst["all_ready_s"] is not None and burst["lost"] == 0 and burst["accepted"] == burst["requested"]
    measured = (
        f"{burst['accepted']}/{burst['requested']} accepted, ready after "
        f"{'never' if burst['all_ready_s'] is None else format(burst['all_ready_s'], '.1f') + ' s'}, "
        f"lost {burst['lost']}, duplicated {burst['duplicated_agent_jobs']}"
    )
    ok = all_ready and burst["duplicated_agent_jobs"] == 0
    checks.append(
        Check(
            f"burst of {burst['requested']:,}: all ready, 0 lost, 0 duplicated",
            measured,
            ok,
            f"lost {burst['lost']}, duplicated {burst['duplicated_agent_jobs']}",
        )
    )
    for service in MEMORY_SERVICES:
        rss = results["peak_rss_mb"].get(service)
        checks.append(_at_most(f"{service} peak RSS < {MAX_RSS_MB:.0f} MB", rss, MAX_RSS_MB, "MB"))
    return checks


def _p(found: dict[str, Any] | None, key: str) -> float | None:
    value = found["latency_ms"].get(key) if found else None
    return float(value) if value is not None else None
