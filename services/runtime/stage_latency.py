"""Per-stage latency of recent sessions (p50/p95), computed in PostgreSQL from the sessions table's stage times.

One query over the sessions requested in the last N minutes (the ``sessions_requested_at`` index bounds it), for the
operators' views: ``streams_cli status`` and ``GET /api/ops/stages``. The sessions table belongs to the session
store; this only reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

# (from, to) stage-time columns of the sessions table; the last one is the whole start-up.
STAGES: tuple[tuple[str, str], ...] = (
    ("requested", "dispatched"),
    ("dispatched", "agent_joined"),
    ("agent_joined", "listener_subscribed"),
    ("listener_subscribed", "greeting_started"),
    ("greeting_started", "greeting_finished"),
    ("greeting_finished", "ready"),
    ("requested", "ready"),
)
MAX_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class StageLatency:
    """One stage over the window: how many sessions reached both ends, and the median and 95th percentile."""

    start: str
    end: str
    count: int
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True)
class StageReport:
    """Sessions requested in the last ``minutes`` (of one organisation, or all), and their stages."""

    minutes: float
    sessions: int
    ready: int
    stages: tuple[StageLatency, ...]


def _query(by_org: bool) -> sql.Composed:
    columns: list[sql.Composable] = [sql.SQL("count(*) AS sessions"), sql.SQL("count(ready_at) AS ready")]
    for i, (start, end) in enumerate(STAGES):
        ms = sql.SQL("1000 * extract(epoch FROM ({} - {}))").format(
            sql.Identifier(f"{end}_at"), sql.Identifier(f"{start}_at")
        )
        columns += [  # percentile_cont and count skip NULLs: a session counts for the stages it reached
            sql.SQL("count({}) AS {}").format(ms, sql.Identifier(f"n{i}")),
            sql.SQL("percentile_cont(0.5) WITHIN GROUP (ORDER BY {}) AS {}").format(ms, sql.Identifier(f"p50_{i}")),
            sql.SQL("percentile_cont(0.95) WITHIN GROUP (ORDER BY {}) AS {}").format(ms, sql.Identifier(f"p95_{i}")),
        ]
    where: sql.Composable = sql.SQL("requested_at >= now() - make_interval(secs => %(window_s)s)")
    if by_org:
        where = sql.SQL("{} AND org_id = %(org_id)s").format(where)
    return sql.SQL("SELECT {} FROM sessions WHERE {}").format(sql.SQL(", ").join(columns), where)


async def stage_latencies(conn: AsyncConnection, minutes: float, org_id: str | None = None) -> StageReport:
    """p50/p95 of every stage of the sessions requested in the last ``minutes`` (one organisation's, or all)."""
    if not 0 < minutes <= MAX_MINUTES:
        raise ValueError(f"minutes must be in (0, {MAX_MINUTES}]")
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_query(org_id is not None), {"window_s": minutes * 60.0, "org_id": org_id})
    row = await cur.fetchone()
    assert row is not None  # an aggregate without GROUP BY always answers one row

    def ms(value: object) -> float | None:
        return None if value is None else round(float(value), 1)  # type: ignore[arg-type]

    stages = tuple(
        StageLatency(start, end, int(row[f"n{i}"]), ms(row[f"p50_{i}"]), ms(row[f"p95_{i}"]))
        for i, (start, end) in enumerate(STAGES)
    )
    return StageReport(minutes, int(row["sessions"]), int(row["ready"]), stages)
