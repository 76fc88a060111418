"""The demo's core against a real stack (simulator + four services as processes), and its plain parts."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from devstack.demo import DemoConfig, run_demo
from devstack.demo.frontend import SessionResult
from devstack.demo.report import write_json
from devstack.demo.sse import events
from devstack.demo.stack import demo_stack_env
from devstack.demo.stats import STAGE_ORDER, percentile, summarise
from tests.e2e.conftest import SERVICES, Stack, running_stack, with_redis_db


@pytest.fixture(scope="module")
async def waiting_stack(redis_url: str, database_url: str) -> AsyncIterator[Stack]:
    """A stack whose agent waits for the user (the demo's frontends join), on its own Redis database."""
    extra = {**demo_stack_env(10), "DISPATCH_JOIN_TIMEOUT_S": "10", "LOG_LEVEL": "WARNING"}
    async with running_stack(with_redis_db(redis_url, 2), database_url, SERVICES, extra_env=extra) as stack:
        yield stack


@pytest.mark.e2e
async def test_twenty_frontends_all_see_agent_ready(waiting_stack: Stack, tmp_path: Path) -> None:
    config = DemoConfig(
        api_url=waiting_stack.api_url, api_key=waiting_stack.api_key, sessions=20, concurrency=10, ready_timeout_s=40
    )
    seen: list[SessionResult] = []
    started = time.monotonic()
    summary = await run_demo(config, on_result=seen.append)
    elapsed = time.monotonic() - started
    if not summary.all_ready:
        async with httpx.AsyncClient() as client:
            counters = (await client.get(f"{waiting_stack.livekit_url}/sim/state")).json()["counters"]
        raise AssertionError(f"{summary.failures} {summary.failure_examples} {counters}\n{waiting_stack.tail()}")
    assert len(seen) == 20 and len({r.session_id for r in seen}) == 20
    assert summary.backend == "simulator"
    timings = summary.timings
    for name in ("HTTP POST /sessions", "time to agent.ready (data channel)", "time to ready (SSE)"):
        p = timings[name]
        assert p is not None and p.count == 20 and 0 < p.p50_ms <= p.p95_ms <= p.p99_ms <= p.max_ms, (name, p)
    ready = timings["time to agent.ready (data channel)"]
    http = timings["HTTP POST /sessions"]
    assert ready is not None and http is not None and http.p50_ms < ready.p50_ms < elapsed * 1000
    for name in STAGE_ORDER:
        stage = summary.stages[name]
        assert stage is not None and stage.count == 20, (name, stage)
        # The agent's job starts inside CreateDispatch, so agent.joined may be stamped before session.dispatched:
        # only that stage may be negative; every other one runs forward in time.
        assert name == "dispatched→agent_joined" or stage.p50_ms >= 0, (name, stage)
    write_json(tmp_path / "summary.json", summary)
    assert json.loads((tmp_path / "summary.json").read_text())["ready"] == 20


@pytest.mark.e2e
async def test_a_refused_key_is_a_setup_error(waiting_stack: Stack) -> None:
    from devstack.demo.runner import DemoSetupError

    with pytest.raises(DemoSetupError, match="--api-key"):
        await run_demo(DemoConfig(api_url=waiting_stack.api_url, api_key="ar_not_a_real_key_123456", sessions=1))


async def test_sse_parser_yields_named_events_and_skips_comments() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in ["retry: 2000", "event: status", 'data: {"status": "pending"}', "", ": keep-alive", ""]:
            yield line
        for line in ["event: status", "data: {", 'data: "status": "ready"}', ""]:
            yield line

    parsed = [(name, data) async for name, data in events(lines())]
    assert parsed == [("status", '{"status": "pending"}'), ("status", '{\n"status": "ready"}')]


def test_percentiles_interpolate_and_summary_counts_failures_by_reason() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    ok = [SessionResult(i, ok=True, http_s=0.01 * (i + 1), ready_s=0.1 * (i + 1)) for i in range(4)]
    bad = [SessionResult(9, reason="ready_timeout@dispatched", detail="no agent.ready within 30s")]
    summary = summarise([*ok, *bad, SessionResult(10, reason="http_429")], concurrency=2, wall_s=2.0, backend="x")
    assert (summary.sessions, summary.ready, summary.failed, summary.all_ready) == (6, 4, 2, False)
    assert summary.failures == {"ready_timeout@dispatched": 1, "http_429": 1}
    assert summary.failure_examples["ready_timeout@dispatched"].startswith("no agent.ready")
    ready = summary.timings["time to agent.ready (data channel)"]
    assert ready is not None and ready.count == 4 and ready.p50_ms == pytest.approx(250)
