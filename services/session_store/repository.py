"""All SQL of the session store: the sessions table, changed only through the status machine."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from contracts.endings import EndCode
from contracts.events import SessionStageTimes, SessionStatusChanged
from contracts.status import SessionStatus
from services.session_store.applying import Presence
from services.session_store.batching import STORED_COLUMNS, BatchPlan, plan
from services.session_store.expiry import EndRules
from services.session_store.lifecycle import (
    STAGE_TIMES,
    StagesObserver,
    StageTimes,
    StatusChange,
    Transition,
)
from services.session_store.outbox import (
    DELETE_ANNOUNCED,
    INSERT,
    TAKE_UNANNOUNCED,
    Announced,
    Publish,
    dumped,
    loaded,
    new_id,
)
from services.session_store.statements import (
    COMMIT,
    END_OVERDUE,
    EXPIRE_DUE,
    FACT_COLUMNS,
    LOCK_ROWS,
    LOCK_ROWS_DELETING,
    PRESENCE,
    STAGE_COLUMNS,
    UPDATE_PLANNED,
    UPDATE_PLANNED_STORING,
    rows_document,
)

Announce = Callable[[list[Transition | None]], list[SessionStatusChanged]]
"""The announcements of a batch's moves (each change's move, or None), to store with them and publish once stored."""
ScanCommitted = Callable[[list[Transition]], None]  # sees a scan's moves once committed (the metrics)
Committed = Callable[[list[Transition | None], list[StageTimes]], None]
"""Sees each change's move and recorded stage times once the batch committed (before its announcements go out)."""


class PostgresSessionRepository:
    """Session rows in PostgreSQL; each change runs in one transaction holding the row lock, and what it announces is
    stored with it and published once it committed (:mod:`services.session_store.outbox`)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        self._announced = Announced()

    async def apply_batch(
        self,
        changes: Sequence[StatusChange],
        presences: Sequence[Presence] = (),
        announce: Announce | None = None,
        publish: Publish | None = None,
        on_committed: Committed | None = None,
    ) -> list[Transition | None]:
        """Apply ``changes`` (in stream order) and ``presences`` in one transaction, as :meth:`apply` and
        :meth:`record_presence` would one after the other; return the move (or None) of each change. ``announce``'s
        events are stored in the same transaction and, once it committed, given to ``publish``."""
        for change in changes:
            unknown = set(change.facts) - FACT_COLUMNS
            if unknown or (change.stage is not None and change.stage not in STAGE_COLUMNS):
                raise ValueError(f"unknown session columns: {sorted(unknown)} {change.stage}")
        planned: BatchPlan | None = None
        events: list[SessionStatusChanged] = []
        row_id = new_id()
        done = self._announced.take()
        try:
            # Pipelined, 2 round trips besides the pool's check: the transaction psycopg opens (BEGIN) and the lock
            # (deleting what was announced since) go together; the update (storing the announcements, the sightings
            # too) and COMMIT together, with the pipeline's closing sync. Not ``conn.transaction()``: in a pipeline it
            # syncs twice more (after BEGIN and before COMMIT). Whatever fails before COMMIT rolls back (the
            # connection's exit).
            async with self._pool.connection() as conn, conn.pipeline():
                if changes or presences:
                    planned, events = await self._locked_and_planned(conn, changes, presences, done, announce, publish)
                    update = rows_document(planned.rows)
                    if events:
                        await conn.execute(UPDATE_PLANNED_STORING, (row_id, dumped(events), update))
                    else:
                        await conn.execute(UPDATE_PLANNED, (update,))
                elif done:
                    await conn.execute(DELETE_ANNOUNCED, (done,))
                if changes or presences or done:  # a statement ran: psycopg began a transaction
                    await conn.execute(COMMIT)
        except BaseException:
            self._announced.give_back(done)
            raise
        if planned is None:
            return []
        if on_committed is not None:
            on_committed(planned.transitions, planned.stages)
        await self._published(row_id, events, publish)
        return planned.transitions

    @staticmethod
    async def _locked_and_planned(
        conn: AsyncConnection[Any],
        changes: Sequence[StatusChange],
        presences: Sequence[Presence],
        done: list[uuid.UUID],
        announce: Announce | None,
        publish: Publish | None,
    ) -> tuple[BatchPlan, list[SessionStatusChanged]]:
        """Lock (or make) every row the batch touches, in id order, and plan the batch on them; its announcements."""
        first = {c.session_id: c for c in reversed(changes)}  # each session's first change inserts its row
        ids = sorted({*first, *(p.session_id for p in presences)})  # a sighting alone inserts it pending, as before
        statuses = [first[i].target.value if i in first else SessionStatus.PENDING.value for i in ids]
        lock = (ids, statuses, [first[i].reason if i in first else None for i in ids])
        cur = await conn.execute(LOCK_ROWS_DELETING, (done, *lock)) if done else await conn.execute(LOCK_ROWS, lock)
        locked = await cur.fetchall()
        created = {row[0] for row in locked if row[1]}
        stored = {row[0]: dict(zip(STORED_COLUMNS, row[2:], strict=True)) for row in locked}
        planned = plan(changes, stored, created, presences)
        events: list[SessionStatusChanged] = []
        if announce is not None and publish is not None and any(planned.transitions):
            events = announce(planned.transitions)
        return planned, events

    async def _published(
        self, row_id: uuid.UUID, events: Sequence[SessionStatusChanged], publish: Publish | None
    ) -> None:
        """Publish a committed transaction's events; its outbox row goes with the next transaction. If this raises,
        the row stays for the sweep."""
        if events and publish is not None:
            await publish(events)
            self._announced.add(row_id)

    async def apply(
        self,
        change: StatusChange,
        announce: Callable[[Transition], SessionStatusChanged] | None = None,
        publish: Publish | None = None,
        on_stages: StagesObserver | None = None,
    ) -> Transition | None:
        """Record stage time and facts (first value wins), then move the status if allowed; when it moves, its
        ``announce`` event is stored with it and given to ``publish`` once committed. ``on_stages`` gets the
        start-up stage times before and after the change, once it committed."""

        def observe(_: list[Transition | None], times: list[StageTimes]) -> None:
            if on_stages is not None:
                on_stages(times[0])

        def announced(transitions: list[Transition | None]) -> list[SessionStatusChanged]:
            return [announce(t) for t in transitions if t is not None and announce is not None]

        (transition,) = await self.apply_batch([change], (), announced, publish, observe)
        return transition

    async def record_presence(self, session_id: str, present: bool, at: datetime, participant_sid: str) -> None:
        """Remember the latest time (and connection) the user was seen joining (``present``) or leaving (a row is
        made if the session's request was not recorded yet: events arrive out of order)."""
        async with self._pool.connection() as conn:
            await conn.execute(_PRESENCE_QUERIES[present], {"id": session_id, "at": at, "sid": participant_sid or None})

    async def end_overdue(
        self, limit: int, rules: EndRules, publish: Publish | None = None, committed: ScanCommitted | None = None
    ) -> list[Transition]:
        """End up to ``limit`` sessions that ``rules`` say are over; like :meth:`expire_due` otherwise."""
        params = {
            "limit": limit,
            "max_s": rules.max_duration_s,
            "grace_s": rules.user_left_grace_s,
            "no_user_s": rules.no_user_timeout_s,
            "reasons": Jsonb(rules.reasons()),
        }

        def moves(rows: list[Any]) -> list[Transition]:
            return [
                Transition(sid, org_id, SessionStatus(from_status), SessionStatus.ENDED, reason, corr, EndCode(code),
                           _stages(times))
                for sid, org_id, corr, from_status, code, reason, *times in rows
            ]  # fmt: skip

        return await self._scan(END_OVERDUE, params, moves, publish, committed)

    async def expire_due(
        self, limit: int, reason: str, publish: Publish | None = None, committed: ScanCommitted | None = None
    ) -> list[Transition]:
        """Expire open sessions past their deadline; SKIP LOCKED lets several replicas share the work. The moves'
        announcements are stored with them and given to ``publish`` once committed (else the sweep publishes them)."""
        code = EndCode.NOT_READY_IN_TIME

        def moves(rows: list[Any]) -> list[Transition]:
            return [
                Transition(sid, org_id, SessionStatus(from_status), SessionStatus.EXPIRED, reason, correlation_id, code,
                           _stages(times))
                for sid, org_id, correlation_id, from_status, *times in rows
            ]  # fmt: skip

        params = (limit, SessionStatus.EXPIRED.value, reason, code.value)
        return await self._scan(EXPIRE_DUE, params, moves, publish, committed)

    async def _scan(
        self,
        query: sql.Composed,
        params: Any,
        moves: Callable[[list[Any]], list[Transition]],
        publish: Publish | None,
        committed: ScanCommitted | None,
    ) -> list[Transition]:
        """Run a scan's UPDATE and store its moves' announcements in one transaction; publish them once committed."""
        events: list[SessionStatusChanged] = []
        row_id = new_id()
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(query, params)
            transitions = moves(await cur.fetchall())
            if transitions and publish is not None:
                events = [t.announcement(t.session_id) for t in transitions]
                await conn.execute(INSERT, (row_id, dumped(events)))
        if committed is not None:
            committed(transitions)
        await self._published(row_id, events, publish)
        return transitions

    async def forget_announced(self) -> None:
        """Delete the rows announced since the last transaction now (at shutdown: else the sweep announces them
        again once they are old)."""
        done = self._announced.take()
        if not done:
            return
        try:
            async with self._pool.connection() as conn:
                await conn.execute(DELETE_ANNOUNCED, (done,))
        except BaseException:
            self._announced.give_back(done)
            raise

    async def sweep_announcements(self, older_than_s: float, limit: int, publish: Publish) -> int:
        """Delete the rows announced since the last transaction; publish, then delete, up to ``limit`` rows older than
        ``older_than_s`` (never announced: their process died or the broker refused); return how many of those."""
        done = self._announced.take()
        try:
            async with self._pool.connection() as conn, conn.transaction():
                if done:
                    await conn.execute(DELETE_ANNOUNCED, (done,))
                cur = await conn.execute(TAKE_UNANNOUNCED, (older_than_s, limit))
                rows = sorted(await cur.fetchall(), key=lambda row: row[0])
                if rows:  # published before the deletion commits: if this fails, they stay for the next sweep
                    await publish([event for _, text in rows for event in loaded(text)])
        except BaseException:
            self._announced.give_back(done)
            raise
        return len(rows)

    async def get(self, session_id: str) -> dict[str, Any] | None:
        """Return one session row as a dict, or None."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute("SELECT * FROM sessions WHERE id = %s", (session_id,))
            return await cur.fetchone()


def _presence_query(present: bool) -> str:
    at_col, sid_col = ("user_joined_at", "user_sid") if present else ("user_left_at", "user_left_sid")
    return sql.SQL(PRESENCE).format(at=sql.Identifier(at_col), sid=sql.Identifier(sid_col)).as_string(None)


_PRESENCE_QUERIES = {present: _presence_query(present) for present in (True, False)}


def _stages(times: Any) -> SessionStageTimes:
    """The stage times of a row that returned the STAGE_TIMES columns (last, in that order)."""
    return SessionStageTimes(**dict(zip(STAGE_TIMES, tuple(times)[-len(STAGE_TIMES) :], strict=True)))
