"""The report's headline: issue #21's "Done when" verdicts, CPU ms per session per process, sessions ready per
second at saturation, the overload phase; and an older report that lacks figures renders "n/a" instead of failing."""

from __future__ import annotations

import copy

from bench.load_spec import LoadResult, LoadSpec
from bench.overload import answer_class, by_class, overload_results
from bench.phases import PhaseResult
from bench.report import headline, markdown
from bench.report_headline import cpu_table, overload_section
from bench.stats import steady_rate
from bench.targets import done_when
from tests.bench.sample_results import results_v1, results_v2

OVERLOAD = "overload at 2x capacity answered with 503s, their p99 < 10 ms"
STORE = "dispatcher + session store <= 5 ms CPU per session (sustained)"


def _verdicts(results: dict) -> dict[str, object]:
    return {check.target: check for check in done_when(results)}


def test_done_when_is_the_issues_list_in_its_order_and_all_met() -> None:
    checks = done_when(results_v2())
    assert [c.target for c in checks] == [
        "API throughput >= 80% of the ceiling",
        "API p99 at 50% of the ceiling's rate <= 15 ms",
        STORE,
        OVERLOAD,
        "burst of 150: all ready, 0 lost, 0 duplicated",
    ]
    assert all(c.met for c in checks), [c for c in checks if not c.met]
    assert checks[2].measured == "4.5 ms"  # dispatcher 2.0 + session store 2.5


def test_overload_without_503s_is_missed_and_says_the_api_queued() -> None:
    results = results_v2()
    results["overload"]["answers"] = {"202": 9000, "503": 0, "timeout": 40}
    results["overload"]["latency_ms"] = {"202": {"p99": 4800.0}}
    check = _verdicts(results)[OVERLOAD]
    assert not check.met
    assert check.gap == "no 503: the API queued instead of refusing"
    assert "202 p99 4800.0 ms, timeouts 40" in check.measured


def test_slow_503s_miss_the_overload_target() -> None:
    results = results_v2()
    results["overload"]["latency_ms"]["503"]["p99"] = 12.0
    check = _verdicts(results)[OVERLOAD]
    assert not check.met
    assert check.gap == "503 p99 2.0 ms over"


def test_dispatcher_and_store_over_5_ms_is_missed() -> None:
    results = results_v2()
    results["e2e"]["cpu_s_per_1000"]["session_store"] = 3.5
    assert not _verdicts(results)[STORE].met


def test_a_lost_or_duplicated_session_in_the_burst_is_missed() -> None:
    for key in ("lost", "duplicated_agent_jobs"):
        results = results_v2()
        results["burst"][key] = 1
        assert not _verdicts(results)["burst of 150: all ready, 0 lost, 0 duplicated"].met


def test_two_agents_in_a_room_at_once_miss_the_burst_target_a_replacement_does_not() -> None:
    results = results_v2()
    results["burst"]["replaced_agent_jobs"] = 1
    check = _verdicts(results)["burst of 150: all ready, 0 lost, 0 duplicated"]
    assert check.met
    assert check.measured.endswith("lost 0, duplicated 0 (1 jobs replaced after the first had ended)")
    assert "duplicated agent jobs 0 (two jobs of one room at once), agents duplicated in a room -, jobs replaced 1" in (
        markdown(results, "plot.png")
    )
    results["burst"]["duplicated_agents_in_room"] = 1
    assert not _verdicts(results)["burst of 150: all ready, 0 lost, 0 duplicated"].met


def test_the_cpu_table_has_every_process_and_a_total_with_the_webhook_sender() -> None:
    table = cpu_table(results_v2())
    assert "| process | sustained (200/s, 100 sessions) | burst (150 sessions) | idle, ms per s |" in table
    assert "| webhooks | 3.0 | 2.7 | n/a |" in table
    assert "| dispatcher + session_store | 4.5 | 4.0 | |" in table
    assert "| **total** | **40.0** | **36.0** | 10.0 |" in table  # the ceiling's 0.1 is not a pipeline process
    assert "2 cores serve at most ~50 sessions/s" in table
    assert "over the sustained phase's 5.0 s window that is ~0.5 ms of each session's total" in table


def test_the_headline_shows_the_rate_at_saturation_and_the_cpu_table() -> None:
    text = headline(results_v2())
    assert "**Sessions ready per second at saturation: 33.3** (the sustained phase's backlog; burst: 35.0/s;" in text
    assert "API closed loop 1700 req/s = 85% of the ceiling's 2000." in text
    assert "Where the difference goes, measured: docs/performance.md." in text
    assert text.index("Issue #21, done when:") < text.index("| **total** |")


def test_the_overload_section_shows_each_answer_with_its_latency_and_the_api_memory() -> None:
    section = overload_section(results_v2())
    assert "Offered 3400/s (2.0x the API's closed-loop 1700/s) for 5.0 s" in section
    assert "| 503 | 8400 | 49.4% | 1.0 | 3.5 | 8.0 |" in section
    assert "| timeout | 0 | 0.0% | n/a | n/a | n/a |" in section
    assert "API peak RSS 120 MB" in section
    assert "using 45% of a core" in section
    assert "at its own limit" not in section
    saturated = results_v2()
    saturated["overload"]["loadgen_cpu_fraction"] = 0.95
    assert "**The generator was at its own limit" in overload_section(saturated)


def test_a_generator_whose_own_loop_ran_late_is_flagged_with_its_lag() -> None:
    on_time = results_v2()
    on_time["overload"]["loadgen_loop_lag_ms"] = {"p50": 0.5, "p99": 4.0, "max": 9.0}
    section = overload_section(on_time)
    assert "Its own event loop ran late by p50 0.5 / p99 4.0 / max 9.0 ms" in section
    assert "at its own limit" not in section
    late = results_v2()
    late["overload"]["loadgen_loop_lag_ms"] = {"p50": 2.0, "p99": 170.0, "max": 600.0}
    assert "**The generator was at its own limit" in overload_section(late)  # its lateness is in every latency


def test_an_older_report_renders_with_n_a_where_figures_are_missing() -> None:
    old = results_v1()
    text = headline(old)
    assert "**Sessions ready per second at saturation: n/a** (the sustained phase's backlog; burst: n/a;" in text
    assert "| webhooks | n/a | n/a | n/a |" in text
    assert f"| {OVERLOAD} | not measured | **MISSED** (no overload phase in this run) |" in text
    assert "(not run: results of an older benchmark)" in markdown({**old, "samples": {}}, "x.png")


def test_steady_rate_leaves_out_the_filling_and_the_draining() -> None:
    times = [0.0, 5.0] + [10.0 + i * 0.1 for i in range(96)] + [40.0, 60.0]  # 10/s in the middle, slow ends
    assert abs(steady_rate(times) - 10.0) < 0.2
    assert steady_rate([1.0, 2.0]) is None
    assert steady_rate([3.0, 3.0, 3.0]) is None


def test_answers_are_classed_and_summarised_per_class() -> None:
    assert [answer_class(s) for s in ("202", "503", "429", "500", "TimeoutError", "ServerTimeoutError")] == [
        "202",
        "503",
        "429",
        "other HTTP",
        "timeout",
        "timeout",
    ]
    assert answer_class("ClientOSError") == "error"
    classes = by_class({"TimeoutError": [10.0], "ServerTimeoutError": [20.0], "500": [1.0], "502": [2.0]})
    assert classes == {"timeout": [10.0, 20.0], "other HTTP": [1.0, 2.0]}
    load = LoadResult(
        latencies_ms=[1.0, 2.0, 900.0],
        statuses={"503": 2, "TimeoutError": 1},
        latencies_by_status={"503": [1.0, 2.0], "TimeoutError": [900.0]},
        wall_s=1.0,
        slot_waits=3,
    )
    phase = PhaseResult("overload", "api", "open", 3.0, 3, 0.0, {}, load.statuses, 0.1, {"api": 0.5}, {"api": 99.0})
    spec = LoadSpec(base_url="http://x", path="/p", mode="open", rate=3.0, duration_s=1.0)
    out = overload_results(spec, 1.5, phase, copy.deepcopy(load))
    assert out["answers"] == {"202": 0, "503": 2, "429": 0, "other HTTP": 0, "timeout": 1, "error": 0}
    assert out["latency_ms"]["503"]["p99"] == 2.0
    assert (out["api_peak_rss_mb"], out["slot_waits"], out["sent"]) == (99.0, 3, 3)
