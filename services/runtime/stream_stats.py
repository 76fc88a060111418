"""What a stream's groups have read, hold pending and lag behind: the numbers behind ``status`` and trimming."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from contracts.streams import dead_letter_stream
from services.runtime.dead_letters import entries as typed_entries

LAG_SCAN_CAP = 10_000  # Redis 6.2 has no XINFO lag: count at most this many undelivered entries
DEAD_SCAN_CAP = 10_000


def parse_id(entry_id: str | bytes) -> tuple[int, int]:
    """``"1700000000000-3"`` as ``(1700000000000, 3)``, comparable in stream order."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def format_id(parts: tuple[int, int]) -> str:
    """The inverse of :func:`parse_id`."""
    return f"{parts[0]}-{parts[1]}"


@dataclass(frozen=True)
class GroupPosition:
    """Where one group is on a stream."""

    group: str
    last_delivered: tuple[int, int]
    pending: int
    oldest_pending: tuple[int, int] | None
    consumers: int
    lag: int | None  # entries not yet delivered; None when unknown


async def group_positions(redis: Redis, stream: str) -> list[GroupPosition]:
    """Every group of ``stream`` with its last-delivered id and oldest pending id ([] if no stream)."""
    try:
        infos = await redis.xinfo_groups(stream)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return []
        raise
    positions = []
    for info in infos:
        name = _text(info["name"])
        pending = int(info["pending"])
        oldest = None
        if pending:
            summary = await redis.xpending(stream, name)
            oldest = parse_id(summary["min"]) if summary.get("min") else None
        lag = info.get("lag")
        positions.append(
            GroupPosition(
                group=name,
                last_delivered=parse_id(info["last-delivered-id"]),
                pending=pending,
                oldest_pending=oldest,
                consumers=int(info["consumers"]),
                lag=int(lag) if lag is not None else None,
            )
        )
    return positions


@dataclass(frozen=True)
class GroupStatus:
    """One row of ``streams_cli status``."""

    stream: str
    group: str
    length: int
    lag: int
    lag_capped: bool
    pending: int
    oldest_pending_age_s: float | None
    consumers: int
    dead_letters: int


async def status(redis: Redis, subscriptions: dict[str, tuple[str, ...]]) -> list[GroupStatus]:
    """A row per (stream, group) of ``subscriptions`` that exists, plus groups found on those streams."""
    rows: list[GroupStatus] = []
    now_ms = time.time() * 1000
    for stream in all_streams(subscriptions):
        length = int(await redis.xlen(stream))
        dead = await _dead_letters_by_group(redis, stream)
        for pos in await group_positions(redis, stream):
            lag, capped = (pos.lag, False) if pos.lag is not None else await _count_after(redis, stream, pos)
            age = (now_ms - pos.oldest_pending[0]) / 1000 if pos.oldest_pending else None
            rows.append(
                GroupStatus(
                    stream, pos.group, length, lag, capped, pos.pending, age, pos.consumers, dead.get(pos.group, 0)
                )
            )
    return rows


async def _count_after(redis: Redis, stream: str, pos: GroupPosition) -> tuple[int, bool]:
    after = typed_entries(
        await redis.xrange(stream, min="(" + format_id(pos.last_delivered), max="+", count=LAG_SCAN_CAP)
    )
    return len(after), len(after) >= LAG_SCAN_CAP


async def _dead_letters_by_group(redis: Redis, stream: str) -> Counter[str]:
    dead = typed_entries(await redis.xrange(dead_letter_stream(stream), min="-", max="+", count=DEAD_SCAN_CAP))
    return Counter(_text(fields.get(b"dead:group", b"?")) for _, fields in dead)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def all_streams(subscriptions: dict[str, tuple[str, ...]]) -> Iterable[str]:
    """Every stream some group reads, once, sorted."""
    return sorted({stream for streams in subscriptions.values() for stream in streams})
