"""A migrated PostgreSQL pool for session-store tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from faststream.redis import RedisBroker
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from services.runtime.migrations import apply_migrations
from services.session_store.announcing import StatusAnnouncer
from services.session_store.migrations import MIGRATIONS
from tests.stack_fixtures import separate_database


@pytest.fixture(scope="session")
async def database_url(database_url: str) -> AsyncIterator[str]:
    """A database of these tests' own: the session-wide stack of tests/e2e runs a session store on the shared one,
    whose scans (and locks) would meet the sessions these tests make (one whole-suite run hung here for 300 s)."""
    async with separate_database(database_url) as own:
        yield own


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    """A pool on the test database with the session store's schema."""
    async with AsyncConnectionPool(database_url, min_size=1, max_size=8, open=False) as pool:
        async with pool.connection() as conn:
            await apply_migrations(conn, "session_store", MIGRATIONS)
        yield pool


@pytest.fixture(scope="session")
def store_redis_url(redis_url: str) -> str:
    """A Redis database of its own: an end-to-end stack still running on the default one never takes its events."""
    return urlunsplit(urlsplit(redis_url)._replace(path="/2"))


@pytest.fixture
async def announcer(store_redis_url: str) -> AsyncIterator[StatusAnnouncer]:
    """The store's real announcer on a real Redis."""
    broker, redis = RedisBroker(store_redis_url), Redis.from_url(store_redis_url)
    await broker.connect()
    try:
        yield StatusAnnouncer(broker, redis)
    finally:
        await broker.stop()
        await redis.aclose()
