"""The figures the headline, the targets and the comparison read from a run's results, None where a run lacks one.

Results carry ``schema`` (SCHEMA); a report without it is version 1 (before the overload phase, the rate at
saturation and the idle CPU). Every reader here tolerates a missing key, so an older report prints "n/a".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SCHEMA = 2
# Every process of one session's path on the simulator, the webhook sender included
PROCESSES = ("api", "dispatcher", "session_store", "agent", "webhooks", "livekit_sim", "redis", "postgres")
MEMORY_SERVICES = ("api", "dispatcher", "session_store")


def dig(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...``, or None where a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def number(data: Any, *keys: str) -> float | None:
    """The number at ``keys``; None when missing, not a number, or NaN."""
    value = dig(data, *keys)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def phase(results: dict[str, Any], target: str, name: str) -> dict[str, Any] | None:
    """The phase of ``target`` named ``name``."""
    return next((p for p in results.get("phases") or [] if p["target"] == target and p["name"] == name), None)


def api_vs_ceiling(results: dict[str, Any]) -> float | None:
    """The API's closed-loop throughput as a share of the ceiling's."""
    api = number(phase(results, "api", "closed"), "throughput_rps")
    ceiling = number(phase(results, "ceiling", "closed"), "throughput_rps")
    return api / ceiling if api is not None and ceiling else None


def api_p99(results: dict[str, Any], name: str) -> float | None:
    """The API's p99 (ms) in its phase ``name`` (``open-50%``, ...)."""
    return number(phase(results, "api", name), "latency_ms", "p99")


def cpu_ms(results: dict[str, Any], section: str) -> dict[str, float]:
    """CPU ms per session per process in ``section`` (``e2e`` or ``burst``); empty when not measured."""
    per = dig(results, section, "cpu_s_per_1000")  # CPU seconds per 1,000 sessions = ms per session
    if not isinstance(per, dict):
        return {}
    return {name: float(per[name]) for name in PROCESSES if isinstance(per.get(name), int | float)}


def cpu_total(cpu: dict[str, float]) -> float | None:
    """The processes' CPU ms per session together."""
    return sum(cpu.values()) if cpu else None


def dispatcher_and_store(cpu: dict[str, float]) -> float | None:
    """The dispatcher's and the session store's CPU ms per session together (a target of issue #21)."""
    parts = [cpu.get("dispatcher"), cpu.get("session_store")]
    return sum(p for p in parts if p is not None) if all(p is not None for p in parts) else None


def overload_count(results: dict[str, Any], answer: str) -> float | None:
    """How many answers of the overload phase were ``answer`` (``503``, ``timeout``, ...); None without the phase."""
    answers = dig(results, "overload", "answers")
    return float(answers.get(answer, 0)) if isinstance(answers, dict) else None


@dataclass(frozen=True)
class Figure:
    """One key figure: what, its unit, which way is better, its value (None: not in this run)."""

    label: str
    unit: str
    lower_is_better: bool
    value: float | None


def _percent(share: float | None) -> float | None:
    return None if share is None else 100 * share


def key_figures(results: dict[str, Any]) -> list[Figure]:
    """The figures a comparison shows, in the report's order."""
    figures = [
        Figure("API / ceiling throughput", "%", False, _percent(api_vs_ceiling(results))),
        Figure("API closed loop", "req/s", False, number(phase(results, "api", "closed"), "throughput_rps")),
        Figure("ceiling closed loop", "req/s", False, number(phase(results, "ceiling", "closed"), "throughput_rps")),
        Figure("API p99 at 25% of the ceiling's rate", "ms", True, api_p99(results, "open-25%")),
        Figure("API p99 at 50% of the ceiling's rate", "ms", True, api_p99(results, "open-50%")),
        Figure("ready/s at saturation (sustained)", "/s", False, number(results, "e2e", "ready_per_s_saturated")),
        Figure("ready/s at saturation (burst)", "/s", False, number(results, "burst", "ready_per_s_saturated")),
        Figure("ready/s, first request to last ready (sustained)", "/s", False, number(results, "e2e", "ready_per_s")),
    ]
    for section, label in (("e2e", "sustained"), ("burst", "burst")):
        cpu = cpu_ms(results, section)
        figures += [Figure(f"CPU ms/session {label}: {name}", "ms", True, cpu.get(name)) for name in PROCESSES]
        figures += [
            Figure(f"CPU ms/session {label}: dispatcher + session_store", "ms", True, dispatcher_and_store(cpu)),
            Figure(f"CPU ms/session {label}: total", "ms", True, cpu_total(cpu)),
        ]
    figures += [
        Figure("burst: all ready after", "s", True, number(results, "burst", "all_ready_s")),
        Figure("burst: lost", "", True, number(results, "burst", "lost")),
        Figure("burst: duplicated agent jobs", "", True, number(results, "burst", "duplicated_agent_jobs")),
        Figure("burst: agents duplicated in a room", "", True, number(results, "burst", "duplicated_agents_in_room")),
        Figure("burst: agent jobs replaced", "", True, number(results, "burst", "replaced_agent_jobs")),
        Figure("burst: jobs dropped by LiveKit", "", True, number(results, "burst", "sim_jobs_dropped")),
        Figure("sustained: jobs dropped by LiveKit", "", True, number(results, "e2e", "sim_jobs_dropped")),
        Figure("sustained: duplicated agent jobs", "", True, number(results, "e2e", "duplicated_agent_jobs")),
        Figure("overload: 202 answers", "", False, overload_count(results, "202")),
        Figure("overload: 503 answers", "", False, overload_count(results, "503")),
        Figure("overload: timeouts", "", True, overload_count(results, "timeout")),
        Figure("overload: 503 p99", "ms", True, number(results, "overload", "latency_ms", "503", "p99")),
        Figure("overload: 202 p99", "ms", True, number(results, "overload", "latency_ms", "202", "p99")),
        Figure("overload: API peak RSS", "MB", True, number(results, "overload", "api_peak_rss_mb")),
    ]
    figures += [
        Figure(f"{name} peak RSS (whole run)", "MB", True, number(results, "peak_rss_mb", name))
        for name in MEMORY_SERVICES
    ]
    return figures
