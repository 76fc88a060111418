"""Per-room locks in Redis (redis-py's Lock: SET NX PX with a token, released only by its holder)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis


class RedisRoomLocks:
    """One lock per room; it expires after ``ttl_s`` if its holder crashes, and a waiter gives up after ``wait_s``."""

    def __init__(self, redis: Redis, ttl_s: float = 30.0, wait_s: float = 30.0) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._wait_s = wait_s

    @asynccontextmanager
    async def hold(self, room_name: str) -> AsyncIterator[None]:
        """Hold the room's lock for the block; raises ``redis.exceptions.LockError`` when the wait runs out."""
        lock = self._redis.lock(
            f"agentready:dispatch-lock:{room_name}", timeout=self._ttl_s, blocking_timeout=self._wait_s
        )
        async with lock:
            yield
