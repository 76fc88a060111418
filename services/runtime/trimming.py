"""Stream trimming that never drops an entry some group still needs (XTRIM MINID below every group).

The safe floor of a stream is the lowest, over its groups, of the oldest pending id (or, with
nothing pending, the last-delivered id): everything below it was acked by every group. Entries
younger than ``retention_s`` are kept anyway (replay, XREAD readers that fell behind, debugging).
A stream without groups is never trimmed. Replicas may all trim at once: each trim is safe alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.runtime.stream_stats import format_id, group_positions

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Trimmed:
    """What one trim of one stream did."""

    stream: str
    min_id: str | None  # None: nothing is safe to trim (no groups, or a group has read nothing)
    removed: int


async def safe_min_id(redis: Redis, stream: str, retention_s: float) -> tuple[int, int] | None:
    """The id below which every entry of ``stream`` may go, or None when nothing may."""
    positions = await group_positions(redis, stream)
    if not positions:
        return None
    floor = min(p.oldest_pending if p.oldest_pending is not None else p.last_delivered for p in positions)
    retention_floor = (int(time.time() * 1000 - retention_s * 1000), 0)
    floor = min(floor, retention_floor)
    return floor if floor > (0, 0) else None


async def trim_stream(redis: Redis, stream: str, *, retention_s: float) -> Trimmed:
    """Trim ``stream`` below its safe floor (approximately: Redis may keep a few more, never fewer)."""
    floor = await safe_min_id(redis, stream, retention_s)
    if floor is None:
        return Trimmed(stream, None, 0)
    removed = int(await redis.xtrim(stream, minid=format_id(floor), approximate=True))
    return Trimmed(stream, format_id(floor), removed)


async def trim_streams(redis: Redis, streams: Iterable[str], *, retention_s: float) -> list[Trimmed]:
    """Trim each stream once."""
    return [await trim_stream(redis, stream, retention_s=retention_s) for stream in streams]


async def run_trimmer(redis: Redis, streams: Iterable[str], *, every_s: float, retention_s: float) -> None:
    """Trim ``streams`` every ``every_s`` until cancelled; a failed pass is logged and retried next time."""
    chosen = list(streams)
    while True:
        await asyncio.sleep(every_s)
        try:
            for result in await trim_streams(redis, chosen, retention_s=retention_s):
                if result.removed:
                    log.info("stream_trimmed", stream=result.stream, min_id=result.min_id, removed=result.removed)
        except RedisError as exc:
            log.warning("stream_trim_failed", error=str(exc))
