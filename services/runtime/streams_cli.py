"""``python -m services.runtime.streams_cli``: stream operations (status, dead-letter replay, trimming).

``status`` prints a row per stream and group: length, lag, pending, oldest pending age, dead letters; then each
start-up stage's p50/p95 over the sessions requested in the last ``--minutes`` (from PostgreSQL).
``replay-dead <stream>`` puts dead letters back on their stream after a fix; ``trim`` trims safely once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
import typer
from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from contracts.streams import SUBSCRIPTIONS
from services.runtime.dead_letters import Replayed, replay_dead
from services.runtime.settings import RuntimeSettings
from services.runtime.stage_latency import StageReport, stage_latencies
from services.runtime.stream_stats import GroupStatus, all_streams, status
from services.runtime.trimming import Trimmed, trim_streams

cli = typer.Typer(help="Redis Streams operations: status, dead-letter replay, trimming.", no_args_is_help=True)
T = TypeVar("T")


def _with_redis(url: str | None, work: Callable[[Redis], Awaitable[T]]) -> T:
    async def run() -> T:
        redis = Redis.from_url(url or RuntimeSettings().redis_url)
        try:
            return await work(redis)
        finally:
            await redis.aclose()

    return asyncio.run(run())


def status_table(rows: list[GroupStatus]) -> Table:
    """The ``status`` table."""
    table = Table(title="streams and consumer groups")
    for column in ("stream", "group", "length", "lag", "pending", "oldest pending", "consumers", "dead letters"):
        table.add_column(column, justify="left" if column in {"stream", "group"} else "right")
    for row in rows:
        age = "-" if row.oldest_pending_age_s is None else f"{row.oldest_pending_age_s:.1f}s"
        lag = f">={row.lag}" if row.lag_capped else str(row.lag)
        dead = f"[bold red]{row.dead_letters}[/]" if row.dead_letters else "0"
        table.add_row(row.stream, row.group, str(row.length), lag, str(row.pending), age, str(row.consumers), dead)
    return table


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value / 1000:.2f}s" if value >= 1000 else f"{value:.0f}ms"


def stages_table(report: StageReport) -> Table:
    """The stage latencies table."""
    table = Table(
        title=f"stage latencies: {report.sessions} sessions requested in the last {report.minutes:g} min, "
        f"{report.ready} ready"
    )
    for column in ("stage", "sessions", "p50", "p95"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for stage in report.stages:
        name = f"{stage.start} -> {stage.end}"
        table.add_row(f"[bold]{name}[/]" if stage.start == "requested" and stage.end == "ready" else name,
                      str(stage.count), _ms(stage.p50_ms), _ms(stage.p95_ms))  # fmt: skip
    return table


async def _stage_report(database_url: str, minutes: float, org_id: str | None) -> StageReport:
    async with await psycopg.AsyncConnection.connect(database_url, connect_timeout=5) as conn:
        return await stage_latencies(conn, minutes, org_id)


@cli.command("status")
def status_command(
    redis_url: str | None = typer.Option(None, help="default: REDIS_URL"),
    minutes: float = typer.Option(15.0, min=0.1, max=7 * 24 * 60, help="stage latencies over this many minutes"),
    org: str | None = typer.Option(None, help="stage latencies of this organisation only"),
    database_url: str = typer.Option(
        "postgresql://postgres@127.0.0.1:5432/postgres", envvar="DATABASE_URL", help="default: DATABASE_URL"
    ),
) -> None:
    """Print length, lag, pending, oldest pending age and dead letters per stream and group, then the stage
    latencies (p50/p95) of the last minutes."""
    rows = _with_redis(redis_url, lambda redis: status(redis, SUBSCRIPTIONS))
    console = Console()
    console.print(status_table(rows))
    try:
        report = asyncio.run(_stage_report(database_url, minutes, org))
    except psycopg.Error as exc:  # the streams' table above still stands
        console.print(f"stage latencies: PostgreSQL not readable ({type(exc).__name__}: {exc}); set DATABASE_URL")
        return
    console.print(stages_table(report))


@cli.command("replay-dead")
def replay_dead_command(
    stream: str = typer.Argument(..., help="the original stream, e.g. agentready:session.requested"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="replay at most this many (oldest first)"),
    group: str | None = typer.Option(None, help="only letters this group gave up on"),
    redis_url: str | None = typer.Option(None, help="default: REDIS_URL"),
) -> None:
    """Put dead letters back on their stream (after the fix), oldest first; each reaches every group again."""
    replayed: list[Replayed] = _with_redis(
        redis_url, lambda redis: replay_dead(redis, stream, limit=limit, group=group)
    )
    for item in replayed:
        typer.echo(f"replayed {item.original_id} (dead {item.dead_id}, group {item.group}) as {item.new_id}")
    typer.echo(f"{len(replayed)} dead letter(s) replayed to {stream}")


@cli.command("trim")
def trim_command(
    retention_s: float = typer.Option(3600.0, help="keep entries younger than this"),
    redis_url: str | None = typer.Option(None, help="default: REDIS_URL"),
) -> None:
    """Trim every stream below the oldest entry any group still needs (never a pending one)."""
    results: list[Trimmed] = _with_redis(
        redis_url, lambda redis: trim_streams(redis, all_streams(SUBSCRIPTIONS), retention_s=retention_s)
    )
    for result in results:
        typer.echo(f"{result.stream}: removed {result.removed} below {result.min_id or '(nothing safe)'}")


if __name__ == "__main__":
    cli()
