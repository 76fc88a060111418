"""A migrated PostgreSQL pool for session-store tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from psycopg_pool import AsyncConnectionPool

from services.runtime.migrations import apply_migrations
from services.session_store.migrations import MIGRATIONS


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
