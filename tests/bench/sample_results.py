"""Results of a made-up run, as bench.runner writes them (schema 2), and the same run as an older report (schema 1)."""

from __future__ import annotations

import copy
from typing import Any

MACHINE = {"cpus": 2, "cpu_model": "test cpu", "memory_gb": 1.0, "load_average": [0.5, 0.5, 0.5]}
CPU_E2E = {  # CPU s per 1,000 sessions = ms per session
    "api": 5.0,
    "dispatcher": 2.0,
    "session_store": 2.5,
    "agent": 20.0,
    "webhooks": 3.0,
    "livekit_sim": 3.0,
    "redis": 2.0,
    "postgres": 2.5,
    "ceiling": 0.1,  # not a pipeline process: never in the total
}


def _phase(target: str, name: str, rps: float, p99: float, offered: float | None = None) -> dict[str, Any]:
    return {
        "target": target,
        "name": name,
        "mode": "open" if offered else "closed",
        "offered_rate": offered,
        "sent": 100,
        "throughput_rps": rps,
        "latency_ms": {"count": 100, "p50": p99 / 2, "p95": p99 * 0.9, "p99": p99, "max": p99 * 1.1},
        "statuses": {"202": 100},
        "loadgen_cpu_fraction": 0.2,
        "cpu_s": {},
        "peak_rss_mb": {},
        "extra": {},
    }


def results_v2() -> dict[str, Any]:
    """A run that meets every "Done when" target."""
    return {
        "schema": 2,
        "commit": "abc1234",
        "profile": "quick",
        "machine_before": MACHINE,
        "machine_after": MACHINE,
        "config": {"agent_delay_ms": 500, "open_fractions": [0.25, 0.5]},
        "duration_s": 200.0,
        "phases": [
            _phase("ceiling", "closed", 2000.0, 50.0),
            _phase("api", "closed", 1700.0, 60.0),
            _phase("api", "open-25%", 500.0, 4.0, 500.0),
            _phase("api", "open-50%", 1000.0, 12.0, 1000.0),
            _phase("api", "overload", 1700.0, 9.0, 3400.0),
        ],
        "overload": {
            "capacity_rps": 1700.0,
            "rate": 3400.0,
            "duration_s": 5.0,
            "timeout_s": 10.0,
            "max_in_flight": 1024,
            "sent": 17000,
            "sent_per_s": 3390.0,
            "answers": {"202": 8500, "503": 8400, "429": 0, "other HTTP": 0, "timeout": 0, "error": 100},
            "statuses": {"202": 8500, "503": 8400, "ClientOSError": 100},
            "latency_ms": {
                "202": {"count": 8500, "p50": 20.0, "p99": 40.0, "max": 60.0},
                "503": {"count": 8400, "p50": 1.0, "p99": 3.5, "max": 8.0},
                "error": {"count": 100, "p50": 2.0, "p99": 5.0, "max": 5.0},
            },
            "api_peak_rss_mb": 120.0,
            "api_cpu_s": 4.8,
            "loadgen_cpu_fraction": 0.45,
            "slot_waits": 0,
            "max_start_lag_ms": 2.0,
            "api_quiet_after_s": 0.5,
        },
        "idle_cpu_ms_per_s": {"api": 1.0, "dispatcher": 2.0, "session_store": 2.0, "agent": 5.0, "ceiling": 1.0},
        "e2e": {
            "rate": 200.0,
            "duration_s": 0.5,
            "accepted": 100,
            "ready": 100,
            "statuses": {"ended": 100, "missing": 0},
            "settled_after_s": 3.0,
            "ready_per_s": 30.0,
            "ready_per_s_saturated": 33.3,
            "post_to_ready_ms": {"count": 100, "p50": 1500.0, "p99": 3000.0},
            "overhead_ms": {"count": 100, "p50": 1000.0, "p95": 2400.0, "p99": 2500.0},
            "cpu_s_per_1000": dict(CPU_E2E),
            "cpu_window_s": 5.0,
            "api_latency_ms": {"p99": 5.0},
        },
        "e2e_unsaturated": {
            "rate": 15.0,
            "duration_s": 4.0,
            "accepted": 60,
            "ready": 60,
            "not_ready": {},
            "overhead_ms": {"p50": 20.0, "p95": 40.0, "p99": 50.0},
        },
        "burst": {
            "requested": 150,
            "accepted": 150,
            "api_latency_ms": {"p99": 90.0},
            "api_throughput_rps": 900.0,
            "all_ready_s": 5.0,
            "statuses": {"ended": 150, "missing": 0},
            "ready": 150,
            "ready_per_s": 31.0,
            "ready_per_s_saturated": 35.0,
            "lost": 0,
            "duplicated_agent_jobs": 0,
            "cpu_s_per_1000": {name: 0.9 * ms for name, ms in CPU_E2E.items()},
            "peak_rss_mb": {},
        },
        "peak_rss_mb": {"api": 120.0, "dispatcher": 90.0, "session_store": 80.0},
    }


def results_v1() -> dict[str, Any]:
    """The same run as a report from before schema 2: no overload phase, no rate at saturation, no idle CPU, no
    webhook sender measured."""
    old = copy.deepcopy(results_v2())
    for key in ("schema", "commit", "overload", "idle_cpu_ms_per_s"):
        old.pop(key)
    old["phases"] = [p for p in old["phases"] if p["name"] != "overload"]
    for section in ("e2e", "burst"):
        old[section].pop("ready_per_s_saturated")
        old[section]["cpu_s_per_1000"].pop("webhooks")
    old["e2e"].pop("cpu_window_s")
    return old
