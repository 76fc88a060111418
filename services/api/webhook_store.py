"""SQL of the webhook routes: customers' endpoints, their delivery log and replays.

The tables belong to the webhook sender's schema (``services/webhooks/migrations.py``); the API writes endpoints
and, for a replay, makes deliveries due again; the sender does everything else with them.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from contracts.webhooks import ENDPOINT_ID_PREFIX, SECRET_PREFIX
from services.runtime.sealed_secrets import SecretSeal

_ENDPOINT_COLUMNS = "id, url, events, description, created_at"
_DELIVERY_COLUMNS = (
    "id, endpoint_id, session_id, event_type, status, attempts, last_status_code, last_error, "
    "created_at, last_attempt_at, next_attempt_at, delivered_at"
)
# Due now, with a fresh count of attempts; the webhook-id (the row's id) stays, as the specification asks.
_REPLAY = """
UPDATE webhook_deliveries d SET status = 'pending', attempts = 0, next_attempt_at = now(), delivered_at = NULL
FROM webhook_endpoints e
WHERE d.endpoint_id = e.id AND e.org_id = %(org_id)s AND e.id = %(endpoint_id)s AND {which}
RETURNING d.id
"""


def new_secret() -> str:
    """A signing secret as the Standard Webhooks libraries take it: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class Endpoint:
    """A registered endpoint (its secret is shown once, on creation)."""

    id: str
    url: str
    events: list[str]
    description: str
    created_at: datetime


class WebhookStore:
    """Endpoints and deliveries of organisations in PostgreSQL; every query is scoped to one organisation. Secrets
    are stored as ``seal`` makes them (sealed with ``WEBHOOK_SECRET_KEYS``) and never read back here."""

    def __init__(self, pool: AsyncConnectionPool, seal: SecretSeal | None = None) -> None:
        self._pool = pool
        self._seal = seal if seal is not None else SecretSeal()

    async def create(self, org_id: str, url: str, events: list[str], description: str) -> tuple[Endpoint, str]:
        """Register an endpoint; return it and its new secret."""
        secret = new_secret()
        endpoint_id = ENDPOINT_ID_PREFIX + uuid.uuid4().hex
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"INSERT INTO webhook_endpoints (id, org_id, url, events, secret, description) "  # noqa: S608
                f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_ENDPOINT_COLUMNS}",
                (endpoint_id, org_id, url, events, self._seal.seal(secret), description),
            )
            row = await cur.fetchone()
        assert row is not None
        return Endpoint(**row), secret

    async def rotate_secret(
        self, org_id: str, endpoint_id: str, previous_valid_for_s: int
    ) -> tuple[Endpoint, str, datetime | None] | None:
        """Give the endpoint a new secret; the old one signs beside it for ``previous_valid_for_s`` (0: not at all).
        Return the endpoint, its new secret and when the old one stops; None when there is no such endpoint."""
        secret = new_secret()
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "UPDATE webhook_endpoints SET previous_secret = CASE WHEN %(valid_s)s > 0 THEN secret END, "  # noqa: S608
                "previous_secret_expires_at = CASE WHEN %(valid_s)s > 0 "
                "THEN now() + make_interval(secs => %(valid_s)s) END, secret = %(secret)s "
                f"WHERE org_id = %(org_id)s AND id = %(endpoint_id)s RETURNING {_ENDPOINT_COLUMNS}, "
                "previous_secret_expires_at",
                {
                    "valid_s": previous_valid_for_s,
                    "secret": self._seal.seal(secret),
                    "org_id": org_id,
                    "endpoint_id": endpoint_id,
                },
            )
            row = await cur.fetchone()
        if row is None:
            return None
        expires_at = row.pop("previous_secret_expires_at")
        return Endpoint(**row), secret, expires_at

    async def endpoints(self, org_id: str) -> list[Endpoint]:
        """The organisation's endpoints, oldest first."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = %s "  # noqa: S608
                "ORDER BY created_at, id LIMIT 1000",
                (org_id,),
            )
            return [Endpoint(**row) for row in await cur.fetchall()]

    async def get(self, org_id: str, endpoint_id: str) -> Endpoint | None:
        """One endpoint of the organisation, or None."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = %s AND id = %s",  # noqa: S608
                (org_id, endpoint_id),
            )
            row = await cur.fetchone()
        return Endpoint(**row) if row else None

    async def delete(self, org_id: str, endpoint_id: str) -> bool:
        """Remove the endpoint and its deliveries (nothing more is sent to it); False when there was none."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM webhook_endpoints WHERE org_id = %s AND id = %s RETURNING id", (org_id, endpoint_id)
            )
            return await cur.fetchone() is not None

    async def deliveries(self, org_id: str, endpoint_id: str, limit: int, status: str | None) -> list[dict[str, Any]]:
        """The endpoint's last ``limit`` deliveries (of ``status``, if given), newest first."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d "  # noqa: S608
                "WHERE d.endpoint_id = %(endpoint_id)s AND d.org_id = %(org_id)s "
                "AND (%(status)s::text IS NULL OR d.status = %(status)s) "
                "ORDER BY d.created_at DESC, d.id DESC LIMIT %(limit)s",
                {"endpoint_id": endpoint_id, "org_id": org_id, "status": status, "limit": limit},
            )
            return list(await cur.fetchall())

    async def replay_one(self, org_id: str, endpoint_id: str, delivery_id: str) -> bool:
        """Send one delivery again (whatever its status); False when the endpoint has no such delivery."""
        query = _REPLAY.format(which="d.id = %(delivery_id)s")
        params = {"org_id": org_id, "endpoint_id": endpoint_id, "delivery_id": delivery_id}
        async with self._pool.connection() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchone() is not None

    async def replay_dead(self, org_id: str, endpoint_id: str) -> int:
        """Send every dead delivery of the endpoint again; how many."""
        query = _REPLAY.format(which="d.status = 'dead'")
        async with self._pool.connection() as conn:
            cur = await conn.execute(query, {"org_id": org_id, "endpoint_id": endpoint_id})
            return len(await cur.fetchall())
