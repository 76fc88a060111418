"""The sessions table under every kind of event order, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from psycopg_pool import AsyncConnectionPool

from contracts.events import (
    AgentFailed,
    AgentJoined,
    AgentReady,
    Event,
    SessionDispatched,
    SessionDispatchFailed,
    SessionEndRequested,
    SessionRequested,
    SessionStageTimes,
    SessionStatusChanged,
)
from contracts.status import SessionStatus
from services.runtime.migrations import apply_migrations
from services.session_store.lifecycle import handle_event
from services.session_store.migrations import MIGRATIONS
from services.session_store.repository import PostgresSessionRepository


class RecordingPublisher:
    """Keeps what was published, in order (a fake of the broker port)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, event: Event) -> None:
        self.events.append(event)

    async def publish_all(self, events: Sequence[Event]) -> None:
        for event in events:
            await self.publish(event)


def _sid() -> str:
    return uuid.uuid4().hex


def _requested(sid: str) -> SessionRequested:
    return SessionRequested(
        session_id=sid,
        org_id="org-1",
        flow_id="flow-1",
        room_name=f"session-{sid}",
        greeting="Hello",
        ready_deadline=datetime.now(UTC) + timedelta(seconds=30),
    )


async def _apply(pool: AsyncConnectionPool, *events: Event) -> tuple[dict[str, object], RecordingPublisher]:
    repo, publisher = PostgresSessionRepository(pool), RecordingPublisher()
    for event in events:
        await handle_event(event, repo, publisher)
    row = await repo.get(events[0].session_id)
    assert row is not None
    return row, publisher


async def test_happy_path_records_every_stage(pool: AsyncConnectionPool) -> None:
    sid = _sid()
    row, publisher = await _apply(
        pool,
        _requested(sid),
        SessionDispatched(session_id=sid, room_name=f"session-{sid}", dispatch_id="AD_1"),
        AgentJoined(session_id=sid, room_name=f"session-{sid}", job_id="AJ_1"),
        AgentReady(session_id=sid, greeting="Hello"),
    )
    assert row["status"] == "ready"
    assert all(row[c] is not None for c in ("requested_at", "dispatched_at", "agent_joined_at", "ready_at"))
    assert row["org_id"] == "org-1" and row["flow_id"] == "flow-1"
    moves = [(e.from_status, e.to_status) for e in publisher.events]  # type: ignore[attr-defined]
    assert moves == [
        (None, "pending"),
        ("pending", "dispatched"),
        ("dispatched", "agent_joined"),
        ("agent_joined", "ready"),
    ]


async def test_ready_before_dispatched_still_ends_ready(pool: AsyncConnectionPool) -> None:
    sid = _sid()
    row, publisher = await _apply(
        pool,
        AgentReady(session_id=sid, greeting="Hello"),
        _requested(sid),
        SessionDispatched(session_id=sid, room_name=f"session-{sid}", dispatch_id="AD_1"),
        AgentJoined(session_id=sid, room_name=f"session-{sid}", job_id="AJ_1"),
    )
    assert row["status"] == "ready"
    assert row["org_id"] == "org-1"  # facts from the late request are still recorded
    assert row["dispatched_at"] is not None
    assert len(publisher.events) == 1


async def test_duplicates_change_nothing(pool: AsyncConnectionPool) -> None:
    sid = _sid()
    requested = _requested(sid)
    ready = AgentReady(session_id=sid, greeting="Hello")
    first, _ = await _apply(pool, requested, ready)
    again, publisher = await _apply(pool, requested, ready, ready)
    assert again["status"] == "ready"
    assert again["ready_at"] == first["ready_at"]
    assert publisher.events == []


async def test_terminal_is_final(pool: AsyncConnectionPool) -> None:
    sid = _sid()
    row, _ = await _apply(
        pool,
        _requested(sid),
        AgentFailed(session_id=sid, stage="providers", reason="no TTS"),
        AgentReady(session_id=sid, greeting="Hello"),
        SessionEndRequested(session_id=sid),
    )
    assert row["status"] == "failed"
    assert row["reason"] == "agent providers: no TTS"


async def test_dispatch_failure_and_end(pool: AsyncConnectionPool) -> None:
    failed_sid, ended_sid = _sid(), _sid()
    failed, _ = await _apply(pool, _requested(failed_sid), SessionDispatchFailed(session_id=failed_sid, reason="403"))
    ended, _ = await _apply(
        pool,
        _requested(ended_sid),
        AgentReady(session_id=ended_sid, greeting="x"),
        SessionEndRequested(session_id=ended_sid),
    )
    assert (failed["status"], failed["reason"]) == ("failed", "dispatch: 403")
    assert ended["status"] == "ended" and ended["ended_at"] is not None


async def test_concurrent_events_for_one_session_serialise(pool: AsyncConnectionPool) -> None:
    sid = _sid()
    repo, publisher = PostgresSessionRepository(pool), RecordingPublisher()
    events: list[Event] = [
        _requested(sid),
        SessionDispatched(session_id=sid, room_name="r", dispatch_id="AD"),
        AgentJoined(session_id=sid, room_name="r", job_id="AJ"),
        AgentReady(session_id=sid, greeting="x"),
    ] * 3
    await asyncio.gather(*(handle_event(e, repo, publisher) for e in events))
    row = await repo.get(sid)
    assert row is not None and row["status"] == SessionStatus.READY
    final = [e for e in publisher.events if e.to_status == "ready"]  # type: ignore[attr-defined]
    assert len(final) == 1


async def test_migrations_are_idempotent(pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        assert await apply_migrations(conn, "session_store", MIGRATIONS) == []


class FailingOncePublisher(RecordingPublisher):
    """The broker refuses the first publish, as during a Redis blip."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def publish(self, event: Event) -> None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("redis unavailable")
        await super().publish(event)


async def test_a_change_is_never_announced_before_it_is_recorded_nor_left_unannounced(
    pool: AsyncConnectionPool,
) -> None:
    sid = _sid()
    repo, publisher = PostgresSessionRepository(pool), FailingOncePublisher()
    await handle_event(_requested(sid), repo, RecordingPublisher())
    ready = AgentReady(session_id=sid, greeting="Hello")
    with pytest.raises(ConnectionError):
        await handle_event(ready, repo, publisher)
    row = await repo.get(sid)
    assert row is not None and row["status"] == "ready" and row["ready_at"] is not None  # committed first
    assert await handle_event(ready, repo, publisher) is None  # the redelivery: applied already
    assert publisher.events == []
    await repo.sweep_announcements(0.0, 1000, publisher.publish_all)  # the outbox: announced after all
    mine = [(e.from_status, e.to_status) for e in publisher.events if e.session_id == sid]
    assert mine == [("pending", "ready")]


async def test_ready_keeps_when_the_user_could_hear_the_greeting(pool: AsyncConnectionPool) -> None:
    sid, now = _sid(), datetime.now(UTC)
    heard = {
        "listener_subscribed_at": now - timedelta(seconds=3),
        "greeting_started_at": now - timedelta(seconds=2),
        "greeting_finished_at": now - timedelta(milliseconds=100),
    }
    row, _ = await _apply(pool, _requested(sid), AgentReady(session_id=sid, greeting="Hello", **heard))
    assert row["status"] == "ready"
    assert {name: row[name] for name in heard} == heard
    older_sid = _sid()  # an agent from before these times: the columns stay empty
    row, _ = await _apply(pool, _requested(older_sid), AgentReady(session_id=older_sid, greeting="Hello"))
    assert row["status"] == "ready" and all(row[name] is None for name in heard)


async def test_each_announcement_carries_the_stage_times_recorded_with_it(pool: AsyncConnectionPool) -> None:
    sid, now = _sid(), datetime.now(UTC)
    heard = {
        "listener_subscribed_at": now - timedelta(seconds=3),
        "greeting_started_at": now - timedelta(seconds=2),
        "greeting_finished_at": now - timedelta(seconds=1),
    }
    ready = AgentReady(session_id=sid, greeting="Hello", **heard)
    row, publisher = await _apply(pool, _requested(sid), ready, SessionEndRequested(session_id=sid))
    announced = [e for e in publisher.events if isinstance(e, SessionStatusChanged)]
    assert [e.to_status for e in announced] == ["pending", "ready", "ended"]
    pending, ready_change, ended = (e.stages for e in announced)
    assert pending is not None and pending.requested_at == row["requested_at"] and pending.ready_at is None
    assert ready_change is not None and ready_change.ready_at == ready.occurred_at
    assert {name: getattr(ready_change, name) for name in heard} == heard
    assert ended is not None and ended.model_dump() == {name: row[name] for name in SessionStageTimes.model_fields}
