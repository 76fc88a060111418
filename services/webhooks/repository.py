"""All SQL of the webhook sender: deliveries made from status changes, claimed when due, finished or rescheduled.

Why PostgreSQL rows with ``next_attempt_at`` rather than a Redis sorted set of due retries: the delivery log the API
shows, the dead-letter state and the replay are the same rows (one UPDATE re-sends, one SELECT is the log), a
retry survives a Redis restart without persistence, and ``FOR UPDATE SKIP LOCKED`` lets any number of replicas
share due deliveries without a consumer holding a stream message while it waits minutes for a retry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from contracts.webhooks import MESSAGE_ID_PREFIX
from services.runtime.sealed_secrets import SEALED_PREFIX

# One row per endpoint of the organisation that asked for this event; an event announced twice adds nothing.
_ENQUEUE = """
INSERT INTO webhook_deliveries (id, endpoint_id, org_id, session_id, event_type, payload, next_attempt_at)
SELECT %(prefix)s || replace(gen_random_uuid()::text, '-', ''), e.id, e.org_id, %(session_id)s, %(event_type)s,
       %(payload)s, now()
FROM webhook_endpoints e
WHERE e.org_id = %(org_id)s AND %(event_type)s = ANY (e.events)
ON CONFLICT (endpoint_id, session_id, event_type) DO NOTHING
RETURNING id
"""

# The same for a batch of status changes, in one statement: each (org, session, event type, payload) of the arrays.
_ENQUEUE_MANY = """
INSERT INTO webhook_deliveries (id, endpoint_id, org_id, session_id, event_type, payload, next_attempt_at)
SELECT %(prefix)s || replace(gen_random_uuid()::text, '-', ''), e.id, e.org_id, c.session_id, c.event_type,
       c.payload, now()
FROM unnest(%(org_ids)s::text[], %(session_ids)s::text[], %(event_types)s::text[], %(payloads)s::text[])
    AS c(org_id, session_id, event_type, payload)
JOIN webhook_endpoints e ON e.org_id = c.org_id AND c.event_type = ANY (e.events)
ON CONFLICT (endpoint_id, session_id, event_type) DO NOTHING
RETURNING session_id, event_type
"""

# Due deliveries, at most ``per_endpoint`` of each endpoint less those this replica has in flight to it (``busy``),
# none of the endpoints it has filled: a slow endpoint's backlog cannot take every slot. Claiming counts the attempt
# and leases the row until the attempt's timeout plus a margin: if this replica dies mid-attempt, the row is due
# again after that.
_CLAIM = """
WITH ranked AS (
    SELECT id, next_attempt_at,
           row_number() OVER (PARTITION BY endpoint_id ORDER BY next_attempt_at, id) AS rank
    FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= now() AND attempts < %(max_attempts)s
      AND NOT (endpoint_id = ANY (%(full)s))
), busy AS (
    SELECT * FROM unnest(%(busy_ids)s::text[], %(busy_counts)s::int[]) AS b(endpoint_id, n)
), due AS (
    SELECT d.id FROM webhook_deliveries d JOIN ranked r ON r.id = d.id LEFT JOIN busy b ON b.endpoint_id = d.endpoint_id
    WHERE r.rank <= %(per_endpoint)s - COALESCE(b.n, 0) AND d.status = 'pending' AND d.next_attempt_at <= now()
    ORDER BY r.next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries d
SET attempts = d.attempts + 1, last_attempt_at = now(),
    next_attempt_at = now() + make_interval(secs => %(lease_s)s)
FROM due, webhook_endpoints e
WHERE d.id = due.id AND e.id = d.endpoint_id
RETURNING d.id, d.endpoint_id, e.url, e.secret, d.payload, d.attempts,
    CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret END
"""

# A delivery whose last allowed attempt was claimed and never finished (its sender died): dead, not retried.
_ABANDONED = """
UPDATE webhook_deliveries
SET status = 'dead', next_attempt_at = NULL,
    last_error = COALESCE(last_error || '; ', '') || 'the sender stopped during the last attempt'
WHERE status = 'pending' AND next_attempt_at <= now() AND attempts >= %s
"""


# Endpoints' stored secrets, a page at a time in id order, locked until the page's transaction ends (the reseal).
_SECRETS_PAGE = """
SELECT id, secret, previous_secret FROM webhook_endpoints WHERE id > %s ORDER BY id LIMIT %s FOR UPDATE
"""
_REPLACE_SECRETS = "UPDATE webhook_endpoints SET secret = %s, previous_secret = %s WHERE id = %s"
# A sample of the stored secrets, sealed ones first (the start-up check that this sender can open them)
_SECRETS_SAMPLE = """
SELECT id, secret FROM webhook_endpoints ORDER BY starts_with(secret, %s) DESC, created_at DESC LIMIT %s
"""


@dataclass(frozen=True)
class Wanted:
    """A status change customers hear of: its organisation, session, webhook event type and body."""

    org_id: str
    session_id: str
    event_type: str
    payload: str


@dataclass(frozen=True)
class Attempt:
    """One claimed attempt: where to, with which secret (and the one rotated out, while it still signs; both as
    stored, sealed or not), the exact body, and which attempt it is."""

    delivery_id: str
    endpoint_id: str
    url: str
    secret: str
    payload: str
    attempt: int
    previous_secret: str | None = None

    @property
    def signing_secrets(self) -> tuple[str, ...]:
        """The stored secrets that sign this attempt: the current one, and the previous one during a rotation."""
        return (self.secret,) if self.previous_secret is None else (self.secret, self.previous_secret)


@dataclass(frozen=True)
class Outcome:
    """How an attempt went: the answer's status code (None: no answer) and, when it failed, why."""

    ok: bool
    status_code: int | None = None
    error: str | None = None


class DeliveryRepository:
    """Deliveries in PostgreSQL (tables of :mod:`services.webhooks.migrations`)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def stored_secrets(self, limit: int) -> list[tuple[str, str]]:
        """Up to ``limit`` endpoints' (id, stored secret), the sealed ones first, newest first."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(_SECRETS_SAMPLE, (SEALED_PREFIX, limit))
            return [(row[0], row[1]) for row in await cur.fetchall()]

    async def enqueue(self, org_id: str, session_id: str, event_type: str, payload: str) -> list[str]:
        """Make a delivery of ``payload`` for each of ``org_id``'s endpoints that want ``event_type``; new ids."""
        params = {
            "prefix": MESSAGE_ID_PREFIX,
            "org_id": org_id,
            "session_id": session_id,
            "event_type": event_type,
            "payload": payload,
        }
        async with self._pool.connection() as conn:
            cur = await conn.execute(_ENQUEUE, params)
            return [row[0] for row in await cur.fetchall()]

    async def enqueue_many(self, wanted: Sequence[Wanted]) -> list[tuple[str, str]]:
        """:meth:`enqueue` for each of ``wanted`` in one statement; the (session id, event type) of each new delivery.

        Two changes of one batch with the same session and event type make one delivery per endpoint, as they would
        one after the other."""
        if not wanted:
            return []
        params = {
            "prefix": MESSAGE_ID_PREFIX,
            "org_ids": [w.org_id for w in wanted],
            "session_ids": [w.session_id for w in wanted],
            "event_types": [w.event_type for w in wanted],
            "payloads": [w.payload for w in wanted],
        }
        async with self._pool.connection() as conn:
            cur = await conn.execute(_ENQUEUE_MANY, params)
            return [(row[0], row[1]) for row in await cur.fetchall()]

    async def claim_due(
        self,
        limit: int,
        *,
        per_endpoint: int,
        full: Sequence[str],
        max_attempts: int,
        lease_s: float,
        busy: Mapping[str, int] | None = None,
    ) -> list[Attempt]:
        """Claim up to ``limit`` due deliveries (none of the ``full`` endpoints, at most ``per_endpoint`` less what is
        ``busy`` of the others), each leased for ``lease_s``."""
        busy = busy or {}
        params = {
            "limit": limit,
            "per_endpoint": per_endpoint,
            "busy_ids": list(busy),
            "busy_counts": list(busy.values()),
            "full": list(full),
            "max_attempts": max_attempts,
            "lease_s": lease_s,
        }
        async with self._pool.connection() as conn:
            await conn.execute(_ABANDONED, (max_attempts,))
            cur = await conn.execute(_CLAIM, params)
            return [Attempt(*row) for row in await cur.fetchall()]

    async def finish(self, attempt: Attempt, outcome: Outcome, retry_in_s: float | None) -> None:
        """Record the attempt: delivered, retried after ``retry_in_s``, or dead (``retry_in_s`` None).

        Only if the row is still at this attempt: a replay that reset it meanwhile is not overwritten.
        """
        if outcome.ok:
            status, when = "delivered", "NULL"
        elif retry_in_s is None:
            status, when = "dead", "NULL"
        else:
            status, when = "pending", "now() + make_interval(secs => %(retry_in_s)s)"
        query = f"""
            UPDATE webhook_deliveries
            SET status = %(status)s, next_attempt_at = {when}, last_status_code = %(code)s, last_error = %(error)s,
                delivered_at = CASE WHEN %(ok)s THEN now() ELSE delivered_at END
            WHERE id = %(id)s AND attempts = %(attempt)s AND status = 'pending'
        """  # noqa: S608 -- ``when`` is one of the literals above
        params = {
            "status": status,
            "retry_in_s": retry_in_s,
            "code": outcome.status_code,
            "error": outcome.error,
            "ok": outcome.ok,
            "id": attempt.delivery_id,
            "attempt": attempt.attempt,
        }
        async with self._pool.connection() as conn:
            await conn.execute(query, params)


async def locked_secrets(conn: AsyncConnection[Any], after: str, limit: int) -> list[tuple[str, str, str | None]]:
    """Up to ``limit`` endpoints after id ``after``: (id, stored secret, stored previous secret), locked for the
    caller's transaction."""
    cur = await conn.execute(_SECRETS_PAGE, (after, limit))
    return [(row[0], row[1], row[2]) for row in await cur.fetchall()]


async def replace_secrets(conn: AsyncConnection[Any], endpoint_id: str, secret: str, previous: str | None) -> None:
    """Store an endpoint's secrets (as sealed again)."""
    await conn.execute(_REPLACE_SECRETS, (secret, previous, endpoint_id))
