"""The pool's check on checkout (services/runtime/database.py), on a real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import AsyncConnection

from services.runtime.database import CheckWhenIdle, connection_pool


async def test_a_connection_handed_out_just_now_is_not_checked_again_but_one_never_handed_out_is(
    database_url: str,
) -> None:
    recent = CheckWhenIdle(idle_s=3600)
    conn = await AsyncConnection.connect(database_url)
    await recent.check(conn)  # never handed out: checked (alive), handed out now
    await conn.close()  # what a server restart leaves behind: checking it fails
    await recent.check(conn)  # handed out within idle_s: it just worked, no round trip spent on it
    closed = await AsyncConnection.connect(database_url)
    await closed.close()
    with pytest.raises(psycopg.OperationalError):
        await recent.check(closed)  # never handed out: checked


async def test_the_pool_returns_a_connection_without_its_worker(database_url: str) -> None:
    """No reset callback: a connection comes back in the caller's task, not through the pool's worker (a task
    switch per batch)."""
    pool = connection_pool(_Settings(database_url), skip_check_within_s=1.0)
    async with pool:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
        assert pool.get_stats()["pool_available"] == 1  # back at once: no worker had to run first


async def test_a_connection_idle_longer_than_the_bound_is_checked(database_url: str) -> None:
    always = CheckWhenIdle(idle_s=0)
    conn = await AsyncConnection.connect(database_url)
    await always.check(conn)  # alive: the check passes
    await always.check(conn)  # handed out just now, but idle_s is 0: checked again
    await conn.close()
    with pytest.raises(psycopg.OperationalError):
        await always.check(conn)


class _Settings:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.db_pool_min, self.db_pool_max, self.db_pool_timeout_s = 1, 1, 5.0
