"""The runtime's Redis connection sends without ``asyncio.wait_for`` (a task per command on Python 3.11), on real
Redis: commands big and small go through, and a connection the server dropped fails and is replaced as with
redis-py's own connection."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis.asyncio.connection as redis_connection
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from services.runtime.broker import CONNECTION_OPTIONS
from services.runtime.redis_connection import DirectSendConnection


async def _no_wait_for(*_: Any, **__: Any) -> None:
    raise AssertionError("a send went through asyncio.wait_for")


async def test_commands_go_through_without_wait_for(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_connection.asyncio, "wait_for", _no_wait_for)
    client = Redis.from_url(redis_url, connection_class=DirectSendConnection, **CONNECTION_OPTIONS)
    key, big = f"direct-{uuid.uuid4().hex}", b"x" * 4_000_000  # more than the socket takes at once: drained
    try:
        assert await client.set(key, big)
        assert await client.get(key) == big
        assert await client.delete(key) == 1
    finally:
        await client.aclose()


async def test_a_connection_the_server_dropped_is_replaced(redis_url: str, redis: Redis) -> None:
    name = f"direct-{uuid.uuid4().hex[:8]}"
    client = Redis.from_url(redis_url, connection_class=DirectSendConnection, client_name=name, **CONNECTION_OPTIONS)
    try:
        assert await client.ping()
        assert await redis.client_kill_filter(_type="normal", skipme=True) >= 1  # drops the client's connection
        with pytest.raises(RedisConnectionError):  # as with redis-py's own connection: this command fails ...
            await client.ping()
        assert await client.ping()  # ... and the next one gets a new connection
    finally:
        await client.aclose()
