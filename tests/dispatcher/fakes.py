"""Fakes of the dispatcher's ports for unit tests: in-memory LiveKit rooms, locks and ledger."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from contracts.events import SessionRequested
from services.dispatcher.dispatch_state import DispatchState
from services.dispatcher.ports import JobState, LiveKitError, SessionRecord, TransientLiveKitError
from services.dispatcher.retries import RetryPolicy

FAST = RetryPolicy(attempts=4, max_seconds=5, initial_s=0.001)
AGENT = "agentready-test"


class NoLocks:
    """Single-process tests need no cross-replica lock."""

    @asynccontextmanager
    async def hold(self, room_name: str) -> AsyncIterator[None]:
        yield


class FakeRooms:
    """In-memory rooms and dispatches that fail as scripted (a fake of the LiveKitRooms port)."""

    agent_name = AGENT

    def __init__(self, failures: list[LiveKitError] | None = None) -> None:
        self.failures = list(failures or [])
        self.rooms: dict[str, str] = {}
        self.dispatches: dict[str, list[str]] = {}
        self.agents_in: set[str] = set()  # rooms with an agent participant
        self.jobs_started: dict[str, float] = {}  # dispatch id -> when a worker took its job
        self.replaced_listed: list[tuple[str, ...] | None] = []  # what each replace_dispatch was told was listed
        self.calls = 0
        self.listed = 0  # ListDispatch calls
        self.lost_creations = 0  # creating calls that take effect but fail (the answer lost)
        self.removed_joined: list[bool] = []  # each remove_room's agent_joined

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)

    async def ensure_room(self, room_name: str, metadata: str) -> None:
        self._maybe_fail()
        self.rooms.setdefault(room_name, metadata)

    async def create_room_and_dispatch(self, room_name: str, metadata: str) -> str:
        """As LiveKit making the dispatch with the room: only a new room gets one, and its id is not answered."""
        self._maybe_fail()
        if room_name not in self.rooms:
            self.rooms[room_name] = metadata
            self.dispatches.setdefault(room_name, []).append(f"AD_{uuid.uuid4().hex[:8]}")
        if self.lost_creations:  # LiveKit made both, but the answer never arrived
            self.lost_creations -= 1
            raise TransientLiveKitError("create room: cannot reach LiveKit (answer lost)")
        return ""

    async def our_dispatches(self, room_name: str) -> list[str]:
        self.listed += 1
        return list(self.dispatches.get(room_name, []))

    async def create_dispatch(self, room_name: str, metadata: str) -> str:
        if self.lost_creations:  # LiveKit created it, but the answer never arrived
            self.lost_creations -= 1
            self.dispatches.setdefault(room_name, []).append(f"AD_{uuid.uuid4().hex[:8]}")
            raise TransientLiveKitError("create dispatch: cannot reach LiveKit (answer lost)")
        dispatch_id = f"AD_{uuid.uuid4().hex[:8]}"
        self.dispatches.setdefault(room_name, []).append(dispatch_id)
        return dispatch_id

    async def agent_present(self, room_name: str) -> bool:
        return room_name in self.agents_in

    async def replace_dispatch(self, room_name: str, metadata: str, listed: tuple[str, ...] | None = None) -> str:
        self._maybe_fail()
        self.replaced_listed.append(listed)
        self.rooms.setdefault(room_name, metadata)
        self.dispatches[room_name] = [f"AD_{uuid.uuid4().hex[:8]}"]
        return self.dispatches[room_name][0]

    async def remove_room(self, room_name: str, *, agent_joined: bool = False) -> None:
        self._maybe_fail()
        self.removed_joined.append(agent_joined)
        self.rooms.pop(room_name, None)
        self.dispatches.pop(room_name, None)

    async def job_state(self, room_name: str, dispatch_id: str) -> JobState:
        ours = tuple(self.dispatches.get(room_name, []))
        candidates = (dispatch_id,) if dispatch_id else ours  # "": made with the room, any of ours
        started = [self.jobs_started[d] for d in candidates if d in self.jobs_started]
        return JobState(max(started) if started else None, ours)

    async def existing_rooms(self, names: list[str]) -> set[str]:
        self._maybe_fail()
        return {name for name in names if name in self.rooms}


class FakeLedger:
    """The SessionLedger port in memory, with the same state rules as the Redis one."""

    def __init__(self) -> None:
        self.records: dict[str, SessionRecord] = {}
        self.deadlines: dict[str, float] = {}
        self.tries: dict[str, int] = {}

    async def remember(
        self, session_id: str, room_name: str, metadata: str, correlation_id: str, ready_deadline: float = 0.0
    ) -> DispatchState:
        found = self.records.get(session_id)
        if found is None:
            found = SessionRecord(
                session_id, room_name, metadata, correlation_id, DispatchState.REQUESTED, ready_deadline=ready_deadline
            )
        elif not found.room_name:
            found = replace(
                found,
                room_name=room_name,
                metadata=metadata,
                correlation_id=correlation_id,
                ready_deadline=ready_deadline,
            )
        self.records[session_id] = found
        return found.state

    async def remember_try(
        self, session_id: str, room_name: str, metadata: str, correlation_id: str, ready_deadline: float = 0.0
    ) -> tuple[DispatchState, int]:
        state = await self.remember(session_id, room_name, metadata, correlation_id, ready_deadline)
        self.tries[session_id] = self.tries.get(session_id, 0) + 1
        return state, self.tries[session_id] - 1

    async def get(self, session_id: str) -> SessionRecord | None:
        return self.records.get(session_id)

    async def _watch(
        self, required: DispatchState, session_id: str, dispatch_id: str, attempt: int, deadline: float
    ) -> bool:
        found = self.records.get(session_id)
        if found is None or found.state != required:
            return False
        self.records[session_id] = replace(
            found, state=DispatchState.WATCHING, dispatch_id=dispatch_id, attempt=attempt
        )
        self.deadlines[session_id] = deadline
        return True

    async def arm(self, session_id: str, dispatch_id: str, attempt: int, deadline: float) -> bool:
        return await self._watch(DispatchState.REQUESTED, session_id, dispatch_id, attempt, deadline)

    async def rearm(self, session_id: str, dispatch_id: str, attempt: int, deadline: float) -> bool:
        return await self._watch(DispatchState.WATCHING, session_id, dispatch_id, attempt, deadline)

    async def claim_due(self, now: float, lease_s: float, limit: int) -> list[SessionRecord]:
        due = sorted((d, s) for s, d in self.deadlines.items() if d <= now)[:limit]
        for _, session_id in due:
            self.deadlines[session_id] = now + lease_s
        return [self.records[s] for _, s in due]

    async def waiting(self) -> int:
        return len(self.deadlines)

    async def next_due(self) -> float | None:
        return min(self.deadlines.values(), default=None)

    async def mark_joined(self, session_id: str) -> None:
        found = self.records.get(session_id) or SessionRecord(session_id, "", "", "", DispatchState.JOINED)
        if found.state != DispatchState.CLOSED:
            self.records[session_id] = replace(found, state=DispatchState.JOINED)
        self.deadlines.pop(session_id, None)

    async def mark_all_joined(self, session_ids: list[str]) -> None:
        for session_id in session_ids:
            await self.mark_joined(session_id)

    async def note_failure(self, session_id: str, code: str, told: bool) -> None:
        found = self.records.get(session_id) or SessionRecord(session_id, "", "", "", DispatchState.REQUESTED)
        self.records[session_id] = replace(
            found, failure_code=code or found.failure_code, told_failure=told or found.told_failure
        )

    async def close(self, session_id: str) -> SessionRecord | None:
        found = self.records.get(session_id) or SessionRecord(session_id, "", "", "", DispatchState.CLOSED)
        self.records[session_id] = replace(found, state=DispatchState.CLOSED)
        self.deadlines.pop(session_id, None)
        return self.records[session_id]


def session_request(room_name: str | None = None, ready_in_s: float = 30.0) -> SessionRequested:
    """A session request with fresh ids, due to be ready ``ready_in_s`` from now (a dispatcher skips it after that)."""
    sid = uuid.uuid4().hex
    return SessionRequested(
        session_id=sid,
        org_id="org",
        flow_id="flow",
        room_name=room_name or f"session-{sid}",
        greeting="Hello",
        ready_deadline=datetime.now(UTC) + timedelta(seconds=ready_in_s),
        agent_credential="agent-credential-secret",
    )
