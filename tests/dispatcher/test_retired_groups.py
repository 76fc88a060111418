"""How the dispatcher reads its streams: a stream it no longer reads keeps no group of it. (Its status-change reader
rests after a batch that was not full, so the changes arriving meanwhile are applied together, and reads on at once
after a full one: services/runtime/multi_stream.py ``rest_ms``, tested in tests/delivery/test_multi_stream.py.)"""

from __future__ import annotations

from redis.asyncio import Redis

from contracts.streams import AGENT_JOINED, Groups
from services.dispatcher.app import retire_groups
from services.runtime.streams import ensure_groups


async def test_the_group_of_a_stream_no_longer_read_is_removed(redis_url: str) -> None:
    """agent.joined keeps no dispatcher group (it would hold back the stream's trimming); other groups stay."""
    redis = Redis.from_url(redis_url)
    try:
        await ensure_groups(redis, {Groups.DISPATCHER: (AGENT_JOINED,), Groups.SESSION_STORE: (AGENT_JOINED,)})
        await retire_groups(redis)
        await retire_groups(redis)  # nothing left to retire: fine
        groups = {g["name"].decode() for g in await redis.xinfo_groups(AGENT_JOINED)}
    finally:
        await redis.aclose()
    assert Groups.DISPATCHER not in groups and Groups.SESSION_STORE in groups
