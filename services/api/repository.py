"""All SQL of the API: flows (owned here) and read-only session rows (owned by the session store)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


@dataclass(frozen=True)
class Flow:
    """A conversation flow an agent runs."""

    id: str
    org_id: str
    name: str
    greeting: str
    created_at: datetime


class ApiRepository:
    """Flows and session reads in PostgreSQL; every query is scoped to one organisation."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def create_flow(self, org_id: str, name: str, greeting: str) -> Flow:
        """Insert a flow and return it."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "INSERT INTO flows (id, org_id, name, greeting) VALUES (%s, %s, %s, %s) "
                "RETURNING id, org_id, name, greeting, created_at",
                (uuid.uuid4().hex, org_id, name, greeting),
            )
            row = await cur.fetchone()
        assert row is not None
        return Flow(**row)

    async def get_flow(self, org_id: str, flow_id: str) -> Flow | None:
        """Return the organisation's flow, or None."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT id, org_id, name, greeting, created_at FROM flows WHERE id = %s AND org_id = %s",
                (flow_id, org_id),
            )
            row = await cur.fetchone()
        return Flow(**row) if row else None

    async def get_session(self, org_id: str, session_id: str) -> dict[str, Any] | None:
        """Return the organisation's session row, or None."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute("SELECT * FROM sessions WHERE id = %s AND org_id = %s", (session_id, org_id))
            return await cur.fetchone()

    async def ping(self) -> None:
        """Raise if PostgreSQL does not answer."""
        async with self._pool.connection() as conn:
            await conn.execute("SELECT 1")
