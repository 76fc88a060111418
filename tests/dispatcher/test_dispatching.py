"""Dispatch rules with a fake LiveKit port: bounded retries on transient errors, none on permanent ones."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from contracts.events import SessionDispatched, SessionDispatchFailed, SessionRequested
from contracts.job import AgentJobMetadata
from services.dispatcher.dispatching import RetryPolicy, dispatch_session
from services.dispatcher.ports import LiveKitError, PermanentLiveKitError, TransientLiveKitError


class NoLocks:
    """Single-process tests need no cross-replica lock."""

    @asynccontextmanager
    async def hold(self, room_name: str) -> AsyncIterator[None]:
        yield


FAST = RetryPolicy(attempts=4, max_seconds=5, initial_s=0.001)


class FakeRooms:
    """In-memory rooms and dispatches that fail as scripted (a fake of the LiveKitRooms port)."""

    def __init__(self, failures: list[LiveKitError] | None = None) -> None:
        self.failures = list(failures or [])
        self.rooms: dict[str, str] = {}
        self.dispatches: dict[str, list[str]] = {}
        self.calls = 0

    async def ensure_room(self, room_name: str, metadata: str) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        self.rooms.setdefault(room_name, metadata)

    async def ensure_dispatch(self, room_name: str, metadata: str) -> str:
        existing = self.dispatches.setdefault(room_name, [])
        if not existing:
            existing.append(f"AD_{uuid.uuid4().hex[:8]}")
        return existing[0]


def _request() -> SessionRequested:
    sid = uuid.uuid4().hex
    return SessionRequested(
        session_id=sid,
        org_id="org",
        flow_id="flow",
        room_name=f"session-{sid}",
        greeting="Hello",
        ready_deadline=datetime.now(UTC) + timedelta(seconds=30),
    )


async def test_dispatches_with_the_session_metadata() -> None:
    rooms, request = FakeRooms(), _request()
    outcome = await dispatch_session(request, rooms, NoLocks(), FAST)
    assert isinstance(outcome, SessionDispatched)
    assert outcome.correlation_id == request.correlation_id
    metadata = AgentJobMetadata.model_validate_json(rooms.rooms[request.room_name])
    assert (metadata.sessionId, metadata.greeting, metadata.orgId) == (request.session_id, "Hello", "org")


async def test_redelivered_request_reuses_the_dispatch() -> None:
    rooms, request = FakeRooms(), _request()
    first = await dispatch_session(request, rooms, NoLocks(), FAST)
    second = await dispatch_session(request, rooms, NoLocks(), FAST)
    assert isinstance(first, SessionDispatched) and isinstance(second, SessionDispatched)
    assert first.dispatch_id == second.dispatch_id
    assert len(rooms.dispatches[request.room_name]) == 1


async def test_transient_errors_are_retried_then_succeed() -> None:
    rooms = FakeRooms([TransientLiveKitError("503"), TransientLiveKitError("503")])
    outcome = await dispatch_session(_request(), rooms, NoLocks(), FAST)
    assert isinstance(outcome, SessionDispatched)
    assert rooms.calls == 3


async def test_transient_errors_are_bounded() -> None:
    rooms = FakeRooms([TransientLiveKitError("503")] * 10)
    outcome = await dispatch_session(_request(), rooms, NoLocks(), FAST)
    assert isinstance(outcome, SessionDispatchFailed)
    assert rooms.calls == FAST.attempts
    assert "after 4 attempts" in outcome.reason


async def test_permanent_error_fails_at_once() -> None:
    rooms = FakeRooms([PermanentLiveKitError("permission_denied: the API key lacks roomCreate")])
    outcome = await dispatch_session(_request(), rooms, NoLocks(), FAST)
    assert isinstance(outcome, SessionDispatchFailed)
    assert rooms.calls == 1
    assert "roomCreate" in outcome.reason
