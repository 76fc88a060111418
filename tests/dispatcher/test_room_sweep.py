"""The room sweep's rules with fake ports: a joined or ready session whose room is gone is ended once, after
its grace period; open rooms, other statuses and LiveKit failures end nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from contracts.endings import EndCode
from contracts.events import Event, SessionEndRequested, SessionStatusChanged
from services.dispatcher.ports import TransientLiveKitError
from services.dispatcher.room_sweep import ROOM_GONE_REASON, LiveSession, SweepPolicy, sweep_once, track_change

from .fakes import FAST, FakeRooms

POLICY = SweepPolicy(interval_s=30, grace_s=60, batch=2, max_batches=3)
T0 = 1_800_000_000.0


class FakeLive:
    """LiveSessions in memory."""

    def __init__(self) -> None:
        self.due: dict[str, float] = {}
        self.sessions: dict[str, LiveSession] = {}

    async def track(self, session: LiveSession, first_check_at: float) -> None:
        self.sessions[session.session_id] = session
        self.due.setdefault(session.session_id, first_check_at)

    async def untrack(self, session_id: str) -> None:
        self.due.pop(session_id, None)
        self.sessions.pop(session_id, None)

    async def claim_due(self, now: float, next_check_at: float, limit: int) -> list[LiveSession]:
        taken = sorted((at, sid) for sid, at in self.due.items() if at <= now)[:limit]
        for _, sid in taken:
            self.due[sid] = next_check_at
        return [self.sessions[sid] for _, sid in taken]


def _change(session_id: str, to_status: str, at: float = T0) -> SessionStatusChanged:
    occurred = datetime.fromtimestamp(at, UTC)
    return SessionStatusChanged(session_id=session_id, from_status=None, to_status=to_status, occurred_at=occurred)


async def _live(live: FakeLive, rooms: FakeRooms, status: str = "ready", room_open: bool = True) -> str:
    sid = uuid.uuid4().hex
    room = f"session-{sid}"
    if room_open:
        rooms.rooms[room] = "{}"
    await track_change(_change(sid, status), room, live, POLICY)
    return sid


async def _sweep(live: FakeLive, rooms: FakeRooms, now: float) -> list[Event]:
    published: list[Event] = []

    async def publish(event: Event) -> None:
        published.append(event)

    await sweep_once(live, rooms, publish, POLICY, FAST, clock=lambda: now)
    return published


async def test_a_gone_room_ends_its_session_once_after_the_grace_period() -> None:
    live, rooms = FakeLive(), FakeRooms()
    sid = await _live(live, rooms, room_open=False)
    assert await _sweep(live, rooms, T0 + 59) == []  # within the grace period: not even looked up
    assert rooms.calls == 0
    [gone] = await _sweep(live, rooms, T0 + 60)
    assert isinstance(gone, SessionEndRequested) and gone.session_id == sid and gone.code is EndCode.ROOM_CLOSED
    assert gone.reason == ROOM_GONE_REASON
    assert await _sweep(live, rooms, T0 + 1000) == []


async def test_open_rooms_are_looked_up_again_each_interval_in_bounded_batches() -> None:
    live, rooms = FakeLive(), FakeRooms()
    sids = [await _live(live, rooms) for _ in range(7)]
    assert await _sweep(live, rooms, T0 + 60) == []
    assert rooms.calls == 3  # max_batches calls of batch names each: 6 of 7 looked up
    rooms.rooms.clear()  # every room closes
    [first] = await _sweep(live, rooms, T0 + 61)  # only the seventh is due yet
    later = await _sweep(live, rooms, T0 + 90)
    assert sorted([first.session_id, *(e.session_id for e in later)]) == sorted(sids)


async def test_sessions_not_live_or_over_are_not_swept() -> None:
    live, rooms = FakeLive(), FakeRooms()
    for status in ("pending", "dispatched"):
        await _live(live, rooms, status=status, room_open=False)
    ended = await _live(live, rooms, status="agent_joined", room_open=False)
    await track_change(_change(ended, "ended"), f"session-{ended}", live, POLICY)
    assert await _sweep(live, rooms, T0 + 600) == []
    assert live.due == {}


async def test_a_failed_lookup_ends_nothing_and_tries_again_next_interval() -> None:
    live, rooms = FakeLive(), FakeRooms(failures=[TransientLiveKitError("list rooms: 503")] * 4)
    sid = await _live(live, rooms, room_open=False)
    assert await _sweep(live, rooms, T0 + 60) == []
    [gone] = await _sweep(live, rooms, T0 + 90)
    assert gone.session_id == sid
