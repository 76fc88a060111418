"""``python -m services.runtime.streams_cli``: stream operations (status, dead-letter replay, trimming).

``status`` prints a row per stream and group: length, lag, pending, oldest pending age, dead letters.
``replay-dead <stream>`` puts dead letters back on their stream after a fix; ``trim`` trims safely once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from contracts.streams import SUBSCRIPTIONS
from services.runtime.dead_letters import Replayed, replay_dead
from services.runtime.settings import RuntimeSettings
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


@cli.command("status")
def status_command(redis_url: str | None = typer.Option(None, help="default: REDIS_URL")) -> None:
    """Print length, lag, pending, oldest pending age and dead letters per stream and group."""
    rows = _with_redis(redis_url, lambda redis: status(redis, SUBSCRIPTIONS))
    Console().print(status_table(rows))


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
