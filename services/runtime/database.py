"""The PostgreSQL connection pool every service that owns or reads tables builds the same way."""

from __future__ import annotations

from typing import Protocol

from psycopg_pool import AsyncConnectionPool


class PoolSettings(Protocol):
    """Where the database is and how the pool is sized."""

    @property
    def database_url(self) -> str: ...
    @property
    def db_pool_min(self) -> int: ...
    @property
    def db_pool_max(self) -> int: ...
    @property
    def db_pool_timeout_s(self) -> float: ...


def connection_pool(settings: PoolSettings) -> AsyncConnectionPool:
    """A pool (not yet open) whose connections are checked on checkout: one left over from an outage is replaced."""
    return AsyncConnectionPool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        timeout=settings.db_pool_timeout_s,
        open=False,
        check=AsyncConnectionPool.check_connection,
    )
