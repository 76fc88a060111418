"""Reading the agent's events back from Redis streams, as FastStream wrote them."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from tests.polling import wait_until


def decode_entry(data: bytes) -> tuple[bytes, dict[str, Any]]:
    """Split a FastStream stream entry's ``__data__`` into (binary header, JSON body)."""
    start = data.index(b"{")
    return data[:start], dict(json.loads(data[start:]))


async def stream_events(redis: Redis, stream: str, count: int = 200) -> list[tuple[bytes, dict[str, Any]]]:
    """The newest ``count`` entries of ``stream`` as (header, body), newest first."""
    entries: Any = await redis.xrevrange(stream, count=count)
    return [decode_entry(fields[b"__data__"]) for _id, fields in entries]


async def event_for(redis: Redis, stream: str, session_id: str, timeout: float) -> dict[str, Any]:
    """Poll ``stream`` until an event of ``session_id`` is on it; AssertionError after ``timeout``."""
    found: list[dict[str, Any]] = []

    async def on_stream() -> bool:
        found[:] = [
            body for _header, body in await stream_events(redis, stream) if body.get("session_id") == session_id
        ]
        return bool(found)

    await wait_until(on_stream, deadline_s=timeout, what=f"an event of {session_id} on {stream}", interval_s=0.05)
    return found[0]
