"""A batch of lifecycle events in one transaction (services/session_store/applying.py), on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from psycopg_pool import AsyncConnectionPool

from contracts.events import (
    AgentJoined,
    AgentReady,
    SessionDispatched,
    SessionRequested,
    SessionStatusChanged,
    UserPresenceChanged,
)
from services.session_store.applying import handle_events
from services.session_store.repository import PostgresSessionRepository


class RecordingAnnouncer:
    """Keeps each batch of announcements it was given (a fake of the broker port); can fail like Redis down."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[SessionStatusChanged]] = []
        self._fail = fail

    async def publish_all(self, events: Sequence[SessionStatusChanged]) -> None:
        if self._fail:
            raise ConnectionError("redis is down")
        self.batches.append(list(events))


def _requested(sid: str) -> SessionRequested:
    return SessionRequested(
        session_id=sid, org_id="org-b", flow_id="flow-b", room_name=f"session-{sid}", greeting="Hi",
        ready_deadline=datetime.now(UTC) + timedelta(seconds=30),
    )  # fmt: skip


async def test_one_sessions_events_in_one_batch_move_it_in_stream_order(pool: AsyncConnectionPool) -> None:
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    repo, announcer = PostgresSessionRepository(pool), RecordingAnnouncer()
    events = [
        _requested(a),
        _requested(b),
        SessionDispatched(session_id=a, room_name=f"session-{a}", dispatch_id="AD_a"),
        AgentJoined(session_id=a, room_name=f"session-{a}", job_id="AJ_a"),
        UserPresenceChanged(session_id=b, room_name=f"session-{b}", identity="u", present=True, source="agent"),
        AgentReady(session_id=a, greeting="Hi"),
        SessionDispatched(session_id=a, room_name=f"session-{a}", dispatch_id="AD_a"),  # a late duplicate
    ]
    transitions = await handle_events(events, repo, announcer)
    moves = [(t.session_id, t.from_status, t.to_status) if t else None for t in transitions]
    assert moves == [
        (a, None, "pending"), (b, None, "pending"), (a, "pending", "dispatched"), (a, "dispatched", "agent_joined"),
        (a, "agent_joined", "ready"), None,
    ]  # fmt: skip
    (announced,) = announcer.batches  # every move of the batch in one publish (one MULTI)
    assert [(e.session_id, e.to_status) for e in announced] == [m[::2] for m in moves if m]
    assert announced[-1].stages is not None and announced[-1].stages.ready_at is not None
    assert announced[0].correlation_id == events[0].correlation_id
    row_a, row_b = await repo.get(a), await repo.get(b)
    assert row_a is not None and row_a["status"] == "ready" and row_a["org_id"] == "org-b"
    assert row_a["dispatched_at"] == events[2].occurred_at  # the first dispatch's time, not the duplicate's
    assert row_b is not None and row_b["status"] == "pending" and row_b["user_joined_at"] is not None


async def test_a_failed_announcement_keeps_the_batch_and_the_sweep_announces_it_once(
    pool: AsyncConnectionPool,
) -> None:
    """Announced only once committed: if the broker refuses, the batch stays recorded and its announcements wait in
    the outbox for the sweep (the redelivered batch moves nothing and announces nothing)."""
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    repo, announcer = PostgresSessionRepository(pool), RecordingAnnouncer()
    await handle_events([_requested(a)], repo, announcer)
    events = [
        SessionDispatched(session_id=a, room_name=f"session-{a}", dispatch_id="AD_a"),
        _requested(b),
        UserPresenceChanged(session_id=a, room_name=f"session-{a}", identity="u", present=True, source="agent"),
    ]
    with pytest.raises(ConnectionError):
        await handle_events(events, repo, RecordingAnnouncer(fail=True))
    row_a = await repo.get(a)
    assert row_a is not None and row_a["status"] == "dispatched" and row_a["dispatched_at"] is not None
    assert row_a["user_joined_at"] is not None
    assert await repo.get(b) is not None
    assert await handle_events(events, repo, announcer) == [None, None]  # the redelivery: applied already
    await repo.sweep_announcements(0.0, 1000, announcer.publish_all)
    await repo.sweep_announcements(0.0, 1000, announcer.publish_all)
    mine = [(e.session_id, e.from_status, e.to_status) for batch in announcer.batches for e in batch
            if e.session_id in (a, b)]  # fmt: skip
    assert mine == [(a, None, "pending"), (a, "pending", "dispatched"), (b, None, "pending")]


async def test_concurrent_batches_over_the_same_sessions_in_any_order_do_not_deadlock(
    pool: AsyncConnectionPool,
) -> None:
    """Replicas (and a replica's streams) apply batches that share sessions at once; each locks rows in id order."""
    repo = PostgresSessionRepository(pool)

    def seen(sid: str) -> UserPresenceChanged:
        return UserPresenceChanged(session_id=sid, room_name=f"session-{sid}", identity="u", present=True,
                                   source="agent")  # fmt: skip

    for _ in range(5):
        ids = [uuid.uuid4().hex for _ in range(30)]
        backwards = list(reversed(ids))
        await asyncio.gather(
            handle_events([_requested(sid) for sid in ids], repo, RecordingAnnouncer()),
            handle_events([seen(sid) for sid in backwards], repo, RecordingAnnouncer()),
            handle_events(
                [SessionDispatched(session_id=sid, room_name=f"session-{sid}", dispatch_id="AD") for sid in backwards],
                repo,
                RecordingAnnouncer(),
            ),
        )
        rows = [await repo.get(sid) for sid in ids]
        assert all(row is not None and row["dispatched_at"] and row["user_joined_at"] for row in rows)
