"""Waiting in tests with a deadline: poll a condition, never sleep and hope."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis


async def until(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> None:
    """Return once ``condition()`` is true; TimeoutError after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            if condition():
                return
            await asyncio.sleep(interval)


def decode_entry(data: bytes) -> tuple[bytes, dict[str, Any]]:
    """Split a FastStream stream entry's ``__data__`` into (binary header, JSON body)."""
    start = data.index(b"{")
    return data[:start], dict(json.loads(data[start:]))


async def stream_events(redis: Redis, stream: str, count: int = 200) -> list[tuple[bytes, dict[str, Any]]]:
    """The newest ``count`` entries of ``stream`` as (header, body), newest first."""
    entries: Any = await redis.xrevrange(stream, count=count)
    return [decode_entry(fields[b"__data__"]) for _id, fields in entries]


async def event_for(redis: Redis, stream: str, session_id: str, timeout: float) -> dict[str, Any]:
    """Poll ``stream`` until an event of ``session_id`` is on it; TimeoutError after ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            for _header, body in await stream_events(redis, stream):
                if body.get("session_id") == session_id:
                    return body
            await asyncio.sleep(0.05)
