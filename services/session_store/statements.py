"""The session store's SQL statements: the batch's lock and update, the expiry and overdue scans, presence.

Built once at import (:mod:`psycopg.sql` composition); :mod:`services.session_store.repository` runs them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from psycopg import sql

from services.session_store.batching import PRESENCE_COLUMNS, STORED_COLUMNS, RowPlan
from services.session_store.lifecycle import GREETING_STAGES, STAGE_TIMES
from services.session_store.outbox import DELETE_ANNOUNCED, INSERT

FACT_COLUMNS = frozenset(
    {
        "org_id", "flow_id", "room_name", "ready_deadline", "correlation_id", "end_deadline",
        *GREETING_STAGES,
    }
)  # fmt: skip
STAGE_COLUMNS = frozenset({"requested_at", "dispatched_at", "agent_joined_at", "ready_at", "ended_at"})
RETURN_STAGES = sql.SQL(", ").join(sql.Identifier("s", column) for column in STAGE_TIMES)  # returned last

EXPIRE_DUE = sql.SQL("""
WITH due AS (
    SELECT id, status FROM sessions
    WHERE status IN ('pending', 'dispatched', 'agent_joined') AND ready_deadline <= now()
    ORDER BY ready_deadline
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
UPDATE sessions AS s
SET status = %s, reason = %s, end_code = %s, ended_at = COALESCE(s.ended_at, now()), updated_at = now()
FROM due WHERE s.id = due.id
RETURNING s.id, s.org_id, s.correlation_id, due.status, {stages}
""").format(stages=RETURN_STAGES)

# Sessions past their maximum duration; whose user left more than the grace period ago and did not come back (the
# connection that left is the last one seen joining, and no join was seen after it); or ready this long with
# nobody ever seen joining. The first rule that applies names the end.
END_OVERDUE = sql.SQL("""
WITH due AS (
    SELECT id, status, CASE
        WHEN COALESCE(end_deadline, COALESCE(requested_at, created_at) + make_interval(secs => %(max_s)s)) <= now()
            THEN 'max_duration'
        WHEN user_left_at <= now() - make_interval(secs => %(grace_s)s) THEN 'user_left'
        ELSE 'no_user_joined'
    END AS code
    FROM sessions
    WHERE status IN ('pending', 'dispatched', 'agent_joined', 'ready') AND (
        COALESCE(end_deadline, COALESCE(requested_at, created_at) + make_interval(secs => %(max_s)s)) <= now()
        OR (user_left_at <= now() - make_interval(secs => %(grace_s)s)
            AND user_left_sid = user_sid AND user_joined_at <= user_left_at)
        OR (status = 'ready' AND user_joined_at IS NULL AND user_left_at IS NULL
            AND ready_at <= now() - make_interval(secs => %(no_user_s)s))
    )
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE sessions AS s
SET status = 'ended', end_code = due.code, reason = (%(reasons)s::jsonb) ->> due.code,
    ended_at = COALESCE(s.ended_at, now()), updated_at = now()
FROM due WHERE s.id = due.id
RETURNING s.id, s.org_id, s.correlation_id, due.status, due.code, s.reason, {stages}
""").format(stages=RETURN_STAGES)

# The latest sighting wins (webhooks and agent reports arrive out of order); a connection id comes only from
# LiveKit's webhooks, so the agent's report ("the user is here") never replaces one. A batch applies the same rule
# to the rows it locked (batching._sighted) and writes them with its update: no statement per sighting.
PRESENCE = """
INSERT INTO sessions (id, status, {at}, {sid}) VALUES (%(id)s, 'pending', %(at)s, %(sid)s)
ON CONFLICT (id) DO UPDATE SET
    {sid} = CASE WHEN EXCLUDED.{sid} IS NOT NULL AND (sessions.{at} IS NULL OR EXCLUDED.{at} >= sessions.{at})
        THEN EXCLUDED.{sid} ELSE sessions.{sid} END,
    {at} = GREATEST(sessions.{at}, EXCLUDED.{at}),
    updated_at = now()
"""


TYPES = {
    **dict.fromkeys(("org_id", "flow_id", "room_name", "correlation_id"), "text"),
    **dict.fromkeys(("ready_deadline", "end_deadline", *GREETING_STAGES, *STAGE_COLUMNS), "timestamptz"),
}
PLANNED = tuple(TYPES)  # the fact and stage columns a batch writes, first value wins
# The user's sightings: a row sighted in the batch gets them as planned (the latest sighting wins, batching._sighted).
PRESENCE_TYPES = {"user_joined_at": "timestamptz", "user_sid": "text", "user_left_at": "timestamptz",
                  "user_left_sid": "text"}  # fmt: skip

# Every row a batch touches, made if missing, locked and read in one pass in id order (the no-op update takes the row
# lock; xmax = 0 marks a row this statement inserted). Every writer that locks several rows does it in id order (the
# presence upserts too) or skips locked rows (the scans): two batches that share sessions never deadlock.
LOCK_ROWS = (
    sql.SQL("""
INSERT INTO sessions (id, status, reason)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) AS v(id, status, reason) ORDER BY id
ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id
RETURNING id, xmax = 0, {}
""")
    .format(sql.SQL(", ").join(map(sql.Identifier, STORED_COLUMNS)))
    .as_string(None)
)
# The planned rows come as one JSON document (rows_document): one parameter, encoded by json.dumps in C, instead
# of an array per column that psycopg dumps element by element in Python (~3x the CPU for a batch).
UPDATE_PLANNED = (
    sql.SQL("""
UPDATE sessions AS s SET {assign}, {sighted}, status = COALESCE(v.status, s.status),
    reason = COALESCE(v.reason, s.reason), end_code = COALESCE(v.end_code, s.end_code), updated_at = now()
FROM json_to_recordset(%s::json)
    AS v(id text, status text, reason text, end_code text, {columns}, sighted boolean, {presence_columns})
WHERE s.id = v.id
""")
    .format(
        assign=sql.SQL(", ").join(
            sql.SQL("{c} = COALESCE(s.{c}, v.{c})").format(c=sql.Identifier(column)) for column in PLANNED
        ),
        sighted=sql.SQL(", ").join(
            sql.SQL("{c} = CASE WHEN v.sighted THEN v.{c} ELSE s.{c} END").format(c=sql.Identifier(column))
            for column in PRESENCE_COLUMNS
        ),
        columns=sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(TYPES[column])) for column in PLANNED
        ),
        presence_columns=sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(PRESENCE_TYPES[column]))
            for column in PRESENCE_COLUMNS
        ),
    )
    .as_string(None)
)  # composed once: psycopg caches the conversion of a plain query string


def rows_document(rows: Iterable[RowPlan]) -> str:
    """UPDATE_PLANNED's parameter: each row's id, its status, reason and end code, the values planned for it, and
    its sightings (``sighted``) when it had any; what a row lacks is NULL (kept by the update)."""
    document = []
    for row in rows:
        item: dict[str, Any] = {"id": row.session_id, **row.values}
        if row.status is not None:
            item["status"] = row.status.value
        if row.reason is not None:
            item["reason"] = row.reason
        if row.end_code is not None:
            item["end_code"] = row.end_code
        if row.presence:
            item["sighted"] = True
            item.update(row.presence)
        document.append(item)
    return json.dumps(document, separators=(",", ":"), default=_timestamp)


def _timestamp(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()  # with its offset: timestamptz reads the same instant
    raise TypeError(f"not a session column value: {value!r}")


# The same statements carrying the outbox's work, so that it costs no statement of its own: the lock deletes the rows
# announced since the last transaction, the update stores this one's announcements.
LOCK_ROWS_DELETING = f"WITH announced AS ({DELETE_ANNOUNCED}) {LOCK_ROWS}"
UPDATE_PLANNED_STORING = f"WITH announcements AS ({INSERT}) {UPDATE_PLANNED}"
# A batch's last statement, sent with its writes in the pipeline's closing sync (not a sync of its own, as
# ``conn.commit()`` in a pipeline would).
COMMIT = "COMMIT"
