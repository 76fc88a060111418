"""Trimming never drops an entry a group still needs, on real Redis."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from services.runtime.trimming import trim_stream


async def _stream_with(redis: Redis, count: int) -> tuple[str, list[bytes]]:
    stream = f"test:trim:{uuid.uuid4().hex[:10]}"
    ids = [await redis.xadd(stream, {"n": str(i)}) for i in range(count)]
    return stream, ids


async def test_trim_stops_at_the_oldest_pending_entry_of_any_group(redis: Redis) -> None:
    stream, ids = await _stream_with(redis, 40)
    await redis.xgroup_create(stream, "fast", id="0")
    await redis.xgroup_create(stream, "slow", id="0")
    read = await redis.xreadgroup("fast", "f", {stream: ">"})
    await redis.xack(stream, "fast", *[entry_id for entry_id, _ in read[0][1]])
    await redis.xreadgroup("slow", "s", {stream: ">"}, count=20)  # 20 delivered ...
    await redis.xack(stream, "slow", *ids[:10])  # ... of which 10 acked: ids[10] is the oldest pending
    result = await trim_stream(redis, stream, retention_s=0)
    remaining = [entry_id for entry_id, _ in await redis.xrange(stream)]
    assert set(ids[10:]) <= set(remaining), "a pending or undelivered entry was trimmed"
    assert result.min_id == ids[10].decode()


async def test_trim_keeps_what_a_group_has_not_read(redis: Redis) -> None:
    stream, _ = await _stream_with(redis, 10)
    await redis.xgroup_create(stream, "done", id="$")  # has "read" everything
    await redis.xgroup_create(stream, "behind", id="0")  # has read nothing
    result = await trim_stream(redis, stream, retention_s=0)
    assert result.min_id is None and await redis.xlen(stream) == 10


async def test_a_stream_without_groups_is_never_trimmed(redis: Redis) -> None:
    stream, _ = await _stream_with(redis, 5)
    result = await trim_stream(redis, stream, retention_s=0)
    assert result.min_id is None and await redis.xlen(stream) == 5


async def test_retention_keeps_recent_entries_even_when_acked(redis: Redis) -> None:
    stream, _ = await _stream_with(redis, 5)
    await redis.xgroup_create(stream, "done", id="$")
    await trim_stream(redis, stream, retention_s=3600)
    assert await redis.xlen(stream) == 5
