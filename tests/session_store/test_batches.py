"""A batch of lifecycle events in one transaction (services/session_store/applying.py), on a real PostgreSQL."""

from __future__ import annotations

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


async def test_a_failed_announcement_records_nothing_of_the_batch(pool: AsyncConnectionPool) -> None:
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    repo = PostgresSessionRepository(pool)
    await handle_events([_requested(a)], repo, RecordingAnnouncer())
    events = [
        SessionDispatched(session_id=a, room_name=f"session-{a}", dispatch_id="AD_a"),
        _requested(b),
        UserPresenceChanged(session_id=a, room_name=f"session-{a}", identity="u", present=True, source="agent"),
    ]
    with pytest.raises(ConnectionError):
        await handle_events(events, repo, RecordingAnnouncer(fail=True))
    row_a = await repo.get(a)
    assert row_a is not None and row_a["status"] == "pending" and row_a["dispatched_at"] is None
    assert row_a["user_joined_at"] is None
    assert await repo.get(b) is None
