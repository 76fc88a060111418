"""``session.room_gone`` (the dispatcher's backstop scan) ends a live session, and never reopens one that is over."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from contracts.events import AgentFailed, AgentJoined, AgentReady, Event, SessionRequested, SessionRoomGone
from services.session_store.lifecycle import ROOM_GONE_REASON, handle_event
from services.session_store.repository import PostgresSessionRepository


class Published:
    """Keeps what was published (a fake of the broker port)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, event: Event) -> None:
        self.events.append(event)


async def _ready(repo: PostgresSessionRepository, publisher: Published) -> str:
    sid = uuid.uuid4().hex
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    requested = SessionRequested(
        session_id=sid, org_id="org", flow_id="f", room_name=f"session-{sid}", greeting="Hi", ready_deadline=deadline
    )
    for event in (
        requested,
        AgentJoined(session_id=sid, room_name=f"session-{sid}", job_id="AJ"),
        AgentReady(session_id=sid, greeting="Hi"),
    ):
        await handle_event(event, repo, publisher)
    return sid


async def test_room_gone_ends_a_ready_session(pool: AsyncConnectionPool) -> None:
    repo, publisher = PostgresSessionRepository(pool), Published()
    sid = await _ready(repo, publisher)
    moved = await handle_event(SessionRoomGone(session_id=sid, room_name=f"session-{sid}"), repo, publisher)
    assert moved is not None and moved.to_status.value == "ended"
    row = await repo.get(sid)
    assert row is not None and (row["status"], row["reason"]) == ("ended", ROOM_GONE_REASON)
    assert row["ended_at"] is not None


async def test_room_gone_changes_nothing_once_over(pool: AsyncConnectionPool) -> None:
    repo, publisher = PostgresSessionRepository(pool), Published()
    sid = await _ready(repo, publisher)
    await handle_event(AgentFailed(session_id=sid, stage="flow", reason="down"), repo, publisher)
    assert await handle_event(SessionRoomGone(session_id=sid, room_name=f"session-{sid}"), repo, publisher) is None
    row = await repo.get(sid)
    assert row is not None and row["status"] == "failed"
