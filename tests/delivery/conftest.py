"""Fixtures of the delivery tests: a raw Redis client on the session's real server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client without decode_responses (bytes), like the broker's."""
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``fault`` marker (the fault-injection suite; it runs in ``make test`` too)."""
    config.addinivalue_line("markers", "fault: fault-injection tests on the services as processes (slow)")
