"""All SQL of the API: flows and API keys (owned here) and read-only session rows (owned by the session store)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from services.api.auth import ApiKey
from services.api.storable import read_stored_json
from services.runtime.stage_latency import StageReport, stage_latencies

# The definition as text, read by a bounded reader (a row from before the limits on free-form JSON must not fail reads).
_FLOW_COLUMNS = sql.SQL(
    "id, org_id, name, greeting, definition::text AS definition, agent_settings, created_at, updated_at"
)
_UPDATABLE = frozenset({"name", "greeting", "definition", "agent_settings"})
_JSON_COLUMNS = frozenset({"definition", "agent_settings"})


@dataclass(frozen=True)
class KeyGrant:
    """What a key being created may do: its kind, scopes (secret) or flows and origins (publishable)."""

    kind: str  # "secret" or "publishable"
    scopes: tuple[str, ...] = ()
    flow_ids: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()
    scopes_given: bool = False  # named on the command line: they replace an existing key's


@dataclass(frozen=True)
class Flow:
    """A conversation flow an agent runs."""

    id: str
    org_id: str
    name: str
    greeting: str
    definition: dict[str, Any]
    agent_settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    definition_problem: str | None = None
    """Why the stored definition cannot be served (``definition`` is then ``{}``), or None."""


def _flow(row: dict[str, Any]) -> Flow:
    """A flow from its row, its definition read with bounds (:func:`read_stored_json`)."""
    definition, problem = read_stored_json(row.pop("definition"))
    return Flow(**row, definition=definition, definition_problem=problem)


class ApiRepository:
    """Flows, keys and session reads in PostgreSQL; every flow and session query is scoped to one organisation."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def create_flow(
        self, org_id: str, name: str, greeting: str, definition: dict[str, Any], agent_settings: dict[str, Any]
    ) -> Flow:
        """Insert a flow and return it."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                sql.SQL(
                    "INSERT INTO flows (id, org_id, name, greeting, definition, agent_settings) "
                    "VALUES (%s, %s, %s, %s, %s, %s) RETURNING {}"
                ).format(_FLOW_COLUMNS),
                (uuid.uuid4().hex, org_id, name, greeting, Jsonb(definition), Jsonb(agent_settings)),
            )
            row = await cur.fetchone()
        assert row is not None
        return _flow(row)

    async def list_flows(self, org_id: str, limit: int) -> list[Flow]:
        """The organisation's flows, oldest first."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                sql.SQL("SELECT {} FROM flows WHERE org_id = %s ORDER BY created_at, id LIMIT %s").format(
                    _FLOW_COLUMNS
                ),
                (org_id, limit),
            )
            return [_flow(row) for row in await cur.fetchall()]

    async def get_flow(self, org_id: str, flow_id: str) -> Flow | None:
        """Return the organisation's flow, or None."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                sql.SQL("SELECT {} FROM flows WHERE id = %s AND org_id = %s").format(_FLOW_COLUMNS), (flow_id, org_id)
            )
            row = await cur.fetchone()
        return _flow(row) if row else None

    async def update_flow(self, org_id: str, flow_id: str, changes: dict[str, Any]) -> Flow | None:
        """Apply ``changes`` (column -> value) to the organisation's flow; None when there is no such flow."""
        if set(changes) - _UPDATABLE:
            raise ValueError(f"not updatable: {sorted(set(changes) - _UPDATABLE)}")
        columns = sorted(changes)
        assignments = sql.SQL("").join(sql.SQL("{} = %s, ").format(sql.Identifier(col)) for col in columns)
        values = [Jsonb(changes[c]) if c in _JSON_COLUMNS else changes[c] for c in columns]
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                sql.SQL("UPDATE flows SET {}updated_at = now() WHERE id = %s AND org_id = %s RETURNING {}").format(
                    assignments, _FLOW_COLUMNS
                ),
                (*values, flow_id, org_id),
            )
            row = await cur.fetchone()
        return _flow(row) if row else None

    async def get_session(self, org_id: str, session_id: str) -> dict[str, Any] | None:
        """Return the organisation's session row, or None."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute("SELECT * FROM sessions WHERE id = %s AND org_id = %s", (session_id, org_id))
            return await cur.fetchone()

    async def key_for_hash(self, key_hash: str) -> ApiKey | None:
        """The live (not revoked) API key with this hash: its organisation, kind, scopes, flows and origins."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, org_id, kind, scopes, flow_ids, origins FROM api_keys "
                "WHERE key_hash = %s AND revoked_at IS NULL",
                (key_hash,),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        key_id, org_id, kind, scopes, flow_ids, origins = row
        return ApiKey(
            key_id=str(key_id),
            org_id=str(org_id),
            publishable=kind == "publishable",
            scopes=frozenset(scopes),
            flow_ids=frozenset(flow_ids),
            origins=frozenset(origins),
        )

    async def org_for_key_hash(self, key_hash: str) -> str | None:
        """The organisation of a live (not revoked) API key, by the key's hash."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT org_id FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL", (key_hash,)
            )
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def ensure_org(self, name: str) -> str:
        """Return the id of the organisation called ``name``, creating it if needed."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO organisations (id, name) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
                (uuid.uuid4().hex, name),
            )
            cur = await conn.execute("SELECT id FROM organisations WHERE name = %s", (name,))
            row = await cur.fetchone()
        assert row is not None
        return str(row[0])

    async def add_key(self, org_id: str, key_hash: str, key_prefix: str, grant: KeyGrant) -> str | None:
        """Store a key's hash for the organisation with ``grant``; return the org that owns that hash (None: revoked).

        A key that exists already for this organisation (same kind) takes the grant's flows and origins, and its
        scopes when the grant names them; one of another organisation is left alone.
        """
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO api_keys (id, org_id, key_hash, key_prefix, kind, scopes, flow_ids, origins) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (key_hash) DO UPDATE SET flow_ids = EXCLUDED.flow_ids, origins = EXCLUDED.origins, "
                "scopes = CASE WHEN %s THEN EXCLUDED.scopes ELSE api_keys.scopes END "
                "WHERE api_keys.org_id = EXCLUDED.org_id AND api_keys.kind = EXCLUDED.kind",
                (
                    uuid.uuid4().hex,
                    org_id,
                    key_hash,
                    key_prefix,
                    grant.kind,
                    list(grant.scopes),
                    list(grant.flow_ids),
                    list(grant.origins),
                    grant.scopes_given,
                ),
            )
        return await self.org_for_key_hash(key_hash)

    async def flow_named(self, org_id: str, name: str) -> str | None:
        """The id of the organisation's oldest flow called ``name``, or None."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id FROM flows WHERE org_id = %s AND name = %s ORDER BY created_at, id LIMIT 1", (org_id, name)
            )
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def ping(self) -> None:
        """Raise if PostgreSQL does not answer."""
        async with self._pool.connection() as conn:
            await conn.execute("SELECT 1")

    async def stage_latencies(self, org_id: str | None, minutes: float) -> StageReport:
        """p50/p95 per start-up stage of the organisation's (None: every) sessions of the last ``minutes``."""
        async with self._pool.connection() as conn:
            return await stage_latencies(conn, minutes, org_id)

    async def session_room(self, session_id: str) -> tuple[str, str] | None:
        """(room name, status) of a recorded session of any organisation: the operators' CLI looks it up."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT room_name, status FROM sessions WHERE id = %s", (session_id,))
            row = await cur.fetchone()
        return (str(row[0]), str(row[1])) if row and row[0] else None
