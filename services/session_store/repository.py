"""All SQL of the session store: the sessions table, changed only through the status machine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from contracts.endings import EndCode
from contracts.events import SessionStageTimes
from contracts.status import SessionStatus, can_transition
from services.session_store.expiry import EndRules
from services.session_store.lifecycle import GREETING_STAGES, STAGE_TIMES, StatusChange, Transition

_FACT_COLUMNS = frozenset(
    {
        "org_id", "flow_id", "room_name", "ready_deadline", "correlation_id", "end_deadline",
        *GREETING_STAGES,
    }
)  # fmt: skip
_STAGE_COLUMNS = frozenset({"requested_at", "dispatched_at", "agent_joined_at", "ready_at", "ended_at"})
_RETURN_STAGES = sql.SQL(", ").join(sql.Identifier("s", column) for column in STAGE_TIMES)  # returned last

_EXPIRE_DUE = sql.SQL("""
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
""").format(stages=_RETURN_STAGES)

# Sessions past their maximum duration; whose user left more than the grace period ago and did not come back (the
# connection that left is the last one seen joining, and no join was seen after it); or ready this long with
# nobody ever seen joining. The first rule that applies names the end.
_END_OVERDUE = sql.SQL("""
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
""").format(stages=_RETURN_STAGES)

# The latest sighting wins (webhooks and agent reports arrive out of order); a connection id comes only from
# LiveKit's webhooks, so the agent's report ("the user is here") never replaces one.
_PRESENCE = """
INSERT INTO sessions (id, status, {at}, {sid}) VALUES (%(id)s, 'pending', %(at)s, %(sid)s)
ON CONFLICT (id) DO UPDATE SET
    {sid} = CASE WHEN EXCLUDED.{sid} IS NOT NULL AND (sessions.{at} IS NULL OR EXCLUDED.{at} >= sessions.{at})
        THEN EXCLUDED.{sid} ELSE sessions.{sid} END,
    {at} = GREATEST(sessions.{at}, EXCLUDED.{at}),
    updated_at = now()
"""


class PostgresSessionRepository:
    """Session rows in PostgreSQL; each change runs in one transaction holding the row lock."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def apply(
        self, change: StatusChange, before_commit: Callable[[Transition], Awaitable[None]] | None = None
    ) -> Transition | None:
        """Record stage time and facts (first value wins), then move the status if allowed; ``before_commit``
        runs inside the transaction (holding the row lock) when the status moves, and its failure rolls back."""
        unknown = set(change.facts) - _FACT_COLUMNS
        if unknown or (change.stage is not None and change.stage not in _STAGE_COLUMNS):
            raise ValueError(f"unknown session columns: {sorted(unknown)} {change.stage}")
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO sessions (id, status, reason) VALUES (%s, %s, %s) "
                "ON CONFLICT (id) DO NOTHING RETURNING id",
                (change.session_id, change.target.value, change.reason),
            )
            created = await cur.fetchone() is not None
            cur = await conn.execute(
                "SELECT status, org_id, correlation_id FROM sessions WHERE id = %s FOR UPDATE", (change.session_id,)
            )
            row = await cur.fetchone()
            assert row is not None
            current = None if created else SessionStatus(row[0])
            moves = created or can_transition(current, change.target)
            stages = await self._record(conn, change, moves)
            if not moves:
                return None
            org_id = change.facts.get("org_id", row[1])
            transition = Transition(
                session_id=change.session_id,
                org_id=str(org_id) if org_id is not None else None,
                from_status=current,
                to_status=change.target,
                reason=change.reason,
                correlation_id=row[2],
                code=change.code,
                stages=stages,
            )
            if before_commit is not None:
                await before_commit(transition)
            return transition

    @staticmethod
    async def _record(conn: Any, change: StatusChange, moves: bool) -> SessionStageTimes:
        assignments: list[sql.Composable] = [
            sql.SQL("{col} = COALESCE({col}, {val})").format(col=sql.Identifier(col), val=sql.Literal(val))
            for col, val in change.facts.items()
        ]
        if change.stage is not None:
            assignments.append(
                sql.SQL("{col} = COALESCE({col}, {val})").format(
                    col=sql.Identifier(change.stage), val=sql.Literal(change.at)
                )
            )
        if moves:
            assignments.append(sql.SQL("status = {}").format(sql.Literal(change.target.value)))
            assignments.append(sql.SQL("reason = COALESCE({}, reason)").format(sql.Literal(change.reason)))
            code = change.code.value if change.code is not None else None
            assignments.append(sql.SQL("end_code = COALESCE({}, end_code)").format(sql.Literal(code)))
        assignments.append(sql.SQL("updated_at = now()"))
        query = sql.SQL("UPDATE sessions AS s SET {} WHERE id = {} RETURNING {}").format(
            sql.SQL(", ").join(assignments), sql.Literal(change.session_id), _RETURN_STAGES
        )
        cur = await conn.execute(query)
        return _stages(await cur.fetchone())

    async def record_presence(self, session_id: str, present: bool, at: datetime, participant_sid: str) -> None:
        """Remember the latest time (and connection) the user was seen joining (``present``) or leaving (a row is
        made if the session's request was not recorded yet: events arrive out of order)."""
        at_col, sid_col = ("user_joined_at", "user_sid") if present else ("user_left_at", "user_left_sid")
        query = sql.SQL(_PRESENCE).format(at=sql.Identifier(at_col), sid=sql.Identifier(sid_col))
        async with self._pool.connection() as conn:
            await conn.execute(query, {"id": session_id, "at": at, "sid": participant_sid or None})

    async def end_overdue(
        self,
        limit: int,
        rules: EndRules,
        before_commit: Callable[[list[Transition]], Awaitable[None]] | None = None,
    ) -> list[Transition]:
        """End up to ``limit`` sessions that ``rules`` say are over; like :meth:`expire_due` otherwise."""
        params = {
            "limit": limit,
            "max_s": rules.max_duration_s,
            "grace_s": rules.user_left_grace_s,
            "no_user_s": rules.no_user_timeout_s,
            "reasons": Jsonb(rules.reasons()),
        }
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(_END_OVERDUE, params)
            rows = await cur.fetchall()
            transitions = [
                Transition(
                    sid,
                    org_id,
                    SessionStatus(from_status),
                    SessionStatus.ENDED,
                    reason,
                    corr,
                    EndCode(code),
                    _stages(times),
                )
                for sid, org_id, corr, from_status, code, reason, *times in rows
            ]
            if transitions and before_commit is not None:
                await before_commit(transitions)
        return transitions

    async def expire_due(
        self,
        limit: int,
        reason: str,
        before_commit: Callable[[list[Transition]], Awaitable[None]] | None = None,
    ) -> list[Transition]:
        """Expire open sessions past their deadline; SKIP LOCKED lets several replicas share the work.
        ``before_commit`` runs inside the transaction; its failure rolls the batch back for the next scan."""
        code = EndCode.NOT_READY_IN_TIME
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(_EXPIRE_DUE, (limit, SessionStatus.EXPIRED.value, reason, code.value))
            rows = await cur.fetchall()
            transitions = [
                Transition(
                    session_id=sid,
                    org_id=org_id,
                    from_status=SessionStatus(from_status),
                    to_status=SessionStatus.EXPIRED,
                    reason=reason,
                    correlation_id=correlation_id,
                    code=code,
                    stages=_stages(times),
                )
                for sid, org_id, correlation_id, from_status, *times in rows
            ]
            if transitions and before_commit is not None:
                await before_commit(transitions)
        return transitions

    async def get(self, session_id: str) -> dict[str, Any] | None:
        """Return one session row as a dict, or None."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute("SELECT * FROM sessions WHERE id = %s", (session_id,))
            return await cur.fetchone()


def _stages(times: Any) -> SessionStageTimes:
    """The stage times of a row that returned the STAGE_TIMES columns (last, in that order)."""
    return SessionStageTimes(**dict(zip(STAGE_TIMES, tuple(times)[-len(STAGE_TIMES) :], strict=True)))
