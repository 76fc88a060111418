"""The pool's check on checkout (services/runtime/database.py), on a real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import AsyncConnection

from services.runtime.database import CheckWhenIdle


async def test_a_connection_returned_just_now_is_not_checked_again_but_one_never_returned_is(database_url: str) -> None:
    recent = CheckWhenIdle(idle_s=3600)
    conn = await AsyncConnection.connect(database_url)
    await conn.close()  # what a server restart leaves behind: checking it fails
    with pytest.raises(psycopg.OperationalError):
        await recent.check(conn)  # never returned: checked
    await recent.returned(conn)
    await recent.check(conn)  # returned within idle_s: it just worked, no round trip spent on it


async def test_a_connection_idle_longer_than_the_bound_is_checked(database_url: str) -> None:
    always = CheckWhenIdle(idle_s=0)
    conn = await AsyncConnection.connect(database_url)
    await always.returned(conn)
    await always.check(conn)  # alive: the check passes
    await conn.close()
    with pytest.raises(psycopg.OperationalError):
        await always.check(conn)
