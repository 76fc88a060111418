"""Stage latencies of recent sessions, computed in PostgreSQL (percentile_cont), and the CLI's table of them."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from typer.testing import CliRunner

from services.runtime.migrations import apply_migrations
from services.runtime.stage_latency import stage_latencies
from services.runtime.streams_cli import cli
from services.session_store.migrations import MIGRATIONS

_INSERT = """
INSERT INTO sessions (id, org_id, status, requested_at, dispatched_at, agent_joined_at, listener_subscribed_at,
                      greeting_started_at, greeting_finished_at, ready_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


async def seed(database_url: str, org_id: str) -> None:
    """20 ready sessions (dispatch 100..2000 ms, every later stage 50 ms), one still pending, one too old."""
    now = datetime.now(UTC)
    ms = timedelta(milliseconds=1)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await apply_migrations(conn, "session_store", MIGRATIONS)
        for i in range(1, 21):
            t0 = now - timedelta(minutes=5)
            stages = [t0 + 100 * i * ms + 50 * k * ms for k in range(6)]
            await conn.execute(_INSERT, (uuid.uuid4().hex, org_id, "ready", t0, *stages))
        await conn.execute(_INSERT, (uuid.uuid4().hex, org_id, "pending", now, *[None] * 6))
        old = now - timedelta(hours=2)
        await conn.execute(_INSERT, (uuid.uuid4().hex, org_id, "ready", old, *[old + 60_000 * ms] * 6))
        await conn.commit()


async def test_p50_and_p95_per_stage_over_the_window(database_url: str) -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"
    await seed(database_url, org)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        report = await stage_latencies(conn, 15, org)
        everyone = await stage_latencies(conn, 15)
    assert (report.sessions, report.ready) == (21, 20)  # the two-hour-old session is outside the window
    stages = {(s.start, s.end): s for s in report.stages}
    dispatch = stages[("requested", "dispatched")]
    assert (dispatch.count, dispatch.p50_ms, dispatch.p95_ms) == (20, 1050.0, 1905.0)  # interpolated, as SQL does
    join = stages[("dispatched", "agent_joined")]
    assert (join.count, join.p50_ms, join.p95_ms) == (20, 50.0, 50.0)
    total = stages[("requested", "ready")]
    assert (total.p50_ms, total.p95_ms) == (1300.0, 2155.0)
    assert [f"{s.start}>{s.end}" for s in report.stages][:6] == [
        "requested>dispatched", "dispatched>agent_joined", "agent_joined>listener_subscribed",
        "listener_subscribed>greeting_started", "greeting_started>greeting_finished", "greeting_finished>ready",
    ]  # fmt: skip
    assert everyone.sessions >= report.sessions  # without an organisation: all of them


async def test_the_window_query_uses_the_requested_at_index(database_url: str) -> None:
    await seed(database_url, f"org-{uuid.uuid4().hex[:8]}")
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute("SET enable_seqscan = off")  # a tiny table would be scanned anyway: is the index usable?
        cur = await conn.execute(
            "EXPLAIN SELECT count(*) FROM sessions WHERE requested_at >= now() - make_interval(secs => 900)"
        )
        plan = " ".join(str(row[0]) for row in await cur.fetchall())
    assert "sessions_requested_at" in plan


async def test_a_window_out_of_bounds_is_refused(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        with pytest.raises(ValueError, match="minutes"):
            await stage_latencies(conn, 0)


async def test_status_prints_the_stage_table(redis_url: str, database_url: str) -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"
    await seed(database_url, org)
    args = ["status", "--redis-url", redis_url, "--database-url", database_url, "--org", org, "--minutes", "15"]
    result = await asyncio.to_thread(CliRunner().invoke, cli, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "21 sessions requested in the last 15 min, 20 ready" in result.output
    line = next(row for row in result.output.splitlines() if "requested -> dispatched" in row)
    assert [cell.strip() for cell in line.split("│")[2:5]] == ["20", "1.05s", "1.91s"]
