"""Fast smoke tests of the benchmark's pieces (never the benchmark itself): stats, targets, load generator."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bench.loadgen import WARM_MIN, LoadSpec, _Run, run_load
from bench.profiling import top_functions
from bench.stats import percentile, summary
from bench.targets import evaluate
from tests.bench.serving import serving

SESSIONS_ROUTE = "/api/flows/{flow}/sessions"


def test_percentiles_use_nearest_rank() -> None:
    samples = [float(i) for i in range(1, 101)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert summary(samples)["max"] == 100.0
    assert summary([]) == {"count": 0}


@pytest.fixture
async def echo_server() -> AsyncIterator[str]:
    """A tiny HTTP server answering the session route with a session id, after 2 ms."""
    count = 0

    async def create(_: web.Request) -> web.Response:
        nonlocal count
        count += 1
        session_id = f"s{count}"
        await asyncio.sleep(0.002)
        return web.json_response({"sessionId": session_id}, status=202)

    async with serving({SESSIONS_ROUTE: create}) as url:
        yield url


async def test_closed_loop_stops_after_count(echo_server: str) -> None:
    spec = LoadSpec(base_url=echo_server, path="/api/flows/f/sessions", mode="closed", concurrency=4, count=20)
    result = await run_load(spec)
    assert result.statuses == {"202": 20}
    assert len(set(result.session_ids)) == 20
    assert all(ms >= 2.0 for ms in result.latencies_ms)


ENGINES = pytest.mark.parametrize("engine", ["lean", "aiohttp"])


@ENGINES
async def test_open_loop_sends_at_the_fixed_rate(echo_server: str, engine: str) -> None:
    spec = LoadSpec(
        base_url=echo_server, path="/api/flows/f/sessions", mode="open", rate=100, duration_s=0.3, engine=engine
    )
    result = await run_load(spec)
    assert result.statuses == {"202": 30}
    assert len(set(result.session_ids)) == 30
    assert 0.25 < result.wall_s < 2.0
    assert 0.25 < result.sending_s <= result.wall_s  # the schedule's span: what the target was offered over
    assert set(result.loop_lag_ms) == {"p50", "p99", "max"}  # the generator's own lateness, reported
    assert 0.0 <= result.loop_lag_ms["p50"] <= result.loop_lag_ms["p99"] <= result.loop_lag_ms["max"]


async def test_a_request_sent_before_its_scheduled_time_counts_from_its_send(echo_server: str) -> None:
    """uvloop's timers (millisecond resolution) can wake the open loop early; latency must not shrink."""
    spec = LoadSpec(base_url=echo_server, path="/api/flows/f/sessions", mode="open")
    async with aiohttp.ClientSession(base_url=echo_server) as http:
        run = _Run(spec, http, http)
        await run.one(scheduled=time.perf_counter() + 0.05)  # woke 50 ms early
    assert run.result.statuses == {"202": 1}
    assert run.result.latencies_ms[0] > 0  # measured from the scheduled time, it would be about -48 ms


def test_collapsed_stacks_reduce_to_top_functions(tmp_path: Path) -> None:
    raw = tmp_path / "p.txt"
    raw.write_text("main (a.py:1);work (b.py:2) 3\nmain (a.py:1);idle (c.py:3) 1\n")
    top = top_functions(raw)
    assert top["self"][0] == ("work (b.py)", 75.0)


def test_targets_report_the_gap() -> None:
    phase = {"throughput_rps": 100.0, "latency_ms": {"p99": 20.0}}
    results = {
        "config": {"open_fractions": [0.5]},
        "phases": [
            {**phase, "target": "ceiling", "name": "closed"},
            {**phase, "target": "api", "name": "closed", "throughput_rps": 70.0},
            {**phase, "target": "api", "name": "open-50%"},
        ],
        "e2e": {"rate": 200.0, "overhead_ms": {"p50": 10.0, "p99": 150.0}},
        "burst": {"requested": 10, "accepted": 10, "all_ready_s": 1.0, "lost": 0, "duplicated_agent_jobs": 0},
        "peak_rss_mb": {"api": 100.0, "dispatcher": 160.0, "session_store": 90.0},
    }
    verdicts = {c.target: c for c in evaluate(json.loads(json.dumps(results)))}
    assert not verdicts["API throughput >= 80% of the ceiling"].met
    assert "50.0 ms over" in verdicts["pipeline overhead p99 <= 100 ms at 200/s"].gap
    assert verdicts["burst of 10: all ready, 0 lost, 0 duplicated"].met
    assert not verdicts["dispatcher peak RSS < 150 MB"].met


@pytest.fixture
async def slow_server() -> AsyncIterator[tuple[str, dict[str, int]]]:
    """Answers after 20 ms, counting the requests it holds at once; ``/hang`` never answers."""
    seen = {"in_flight": 0, "max_in_flight": 0}
    never = asyncio.Event()

    async def create(_: web.Request) -> web.Response:
        seen["in_flight"] += 1
        seen["max_in_flight"] = max(seen["max_in_flight"], seen["in_flight"])
        try:
            await asyncio.sleep(0.02)
        finally:
            seen["in_flight"] -= 1
        return web.json_response({"sessionId": uuid.uuid4().hex}, status=202)

    async def hang(_: web.Request) -> web.Response:
        await never.wait()
        return web.Response(status=500)

    async with serving({SESSIONS_ROUTE: create, "/hang": hang}, shutdown_timeout=0.1) as url:
        yield url, seen


@ENGINES
async def test_the_open_loop_holds_at_most_max_in_flight_and_counts_the_waits(
    slow_server: tuple[str, dict[str, int]], engine: str
) -> None:
    url, seen = slow_server
    path = "/api/flows/f/sessions"
    spec = LoadSpec(base_url=url, path=path, mode="open", rate=1000, duration_s=0.03, max_in_flight=4, engine=engine)
    result = await run_load(spec)
    assert result.statuses == {"202": 30}
    assert seen["max_in_flight"] <= 4
    assert result.slot_waits > 0
    assert len(result.latencies_by_status["202"]) == 30


@ENGINES
async def test_a_client_timeout_is_an_answer_of_its_own(slow_server: tuple[str, dict[str, int]], engine: str) -> None:
    url, _ = slow_server
    spec = LoadSpec(base_url=url, path="/hang", mode="open", rate=100, duration_s=0.03, timeout_s=0.2, engine=engine)
    result = await run_load(spec)
    assert sum(result.statuses.values()) == 3
    assert all("Timeout" in status for status in result.statuses), result.statuses


async def test_a_burst_client_comes_back_after_a_503_s_retry_after() -> None:
    refusals = {"left": 6}  # the first six requests are refused, as an overloaded API does

    async def create(_: web.Request) -> web.Response:
        if refusals["left"] > 0:
            refusals["left"] -= 1
            return web.json_response({"error": "overloaded"}, status=503, headers={"Retry-After": "0"})
        return web.json_response({"sessionId": uuid.uuid4().hex}, status=202)

    async with serving({SESSIONS_ROUTE: create}, shutdown_timeout=0.1) as url:
        path = "/api/flows/f/sessions"
        spec = LoadSpec(base_url=url, path=path, mode="closed", concurrency=2, count=4, retry_refused=5)
        result = await run_load(spec)
        refusals["left"] = 1
        without = await run_load(LoadSpec(base_url=url, path=path, mode="closed", concurrency=1, count=1))
    assert result.statuses == {"503": 6, "202": 4}
    assert result.retried == 6
    assert len(set(result.session_ids)) == 4, "every session of the burst accepted in the end"
    assert without.statuses == {"503": 1} and without.retried == 0, "retried only when asked to"
    assert without.session_ids == []


@ENGINES
async def test_the_open_loop_opens_its_connections_before_its_clock_starts(engine: str) -> None:
    """Warm connections: every POST of the phase goes on a connection its warm-up GET opened (none opens its own)."""
    seen: list[tuple[str, int]] = []

    async def record(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        seen.append((request.method, peer[1] if peer else 0))
        return web.json_response({"sessionId": uuid.uuid4().hex}, status=202)

    async with serving({"/healthz": record, "/s": record}) as url:
        spec = LoadSpec(base_url=url, path="/s", mode="open", rate=200, duration_s=0.2, engine=engine)
        result = await run_load(spec)
    methods = [method for method, _ in seen]
    warmed = methods.index("POST")
    assert warmed >= WARM_MIN and set(methods[:warmed]) == {"GET"} and set(methods[warmed:]) == {"POST"}
    assert {port for method, port in seen if method == "POST"} <= {port for method, port in seen[:warmed]}
    assert result.statuses == {"202": 40}
