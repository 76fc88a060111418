"""The backstop for sessions that end without anyone saying so: a joined or ready session whose room is gone
from LiveKit (closed after its empty or departure timeout, deleted) is ended: ``session.end_requested`` with the
code ``room_closed``, as LiveKit's ``room_finished`` webhook would have.

The agent's job events and LiveKit's webhooks end sessions first; this scan catches what they miss (a lost
webhook, an agent that crashed without a word). Cheap and bounded: each live session's room is looked up once
per ``interval_s`` across all replicas (a claimed entry is pushed one interval later, so replicas take disjoint
ones), at most ``batch`` names per ListRooms call and ``max_batches`` calls per sweep and replica; a session is
first looked at ``grace_s`` after it went live. Plain rules here; Redis and LiveKit come in through the ports.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from contracts.endings import EndCode, sentence
from contracts.events import Event, SessionEndRequested, SessionStatusChanged
from contracts.status import TERMINAL
from services.dispatcher.ports import LiveKitError
from services.dispatcher.retries import RetryPolicy, with_retries

log = structlog.get_logger(__name__)

ROOM_GONE_REASON = sentence(EndCode.ROOM_CLOSED, "no longer on LiveKit, found by the dispatcher's room scan")

LIVE_STATUSES = frozenset({"agent_joined", "ready"})
_TERMINAL = frozenset(status.value for status in TERMINAL)


@dataclass(frozen=True)
class SweepPolicy:
    """How often a live session's room is looked up, after what grace, and how many per sweep."""

    interval_s: float = 30.0
    grace_s: float = 60.0
    batch: int = 100
    max_batches: int = 10


@dataclass(frozen=True)
class LiveSession:
    """A session in ``agent_joined`` or ``ready``, and the room it lives in."""

    session_id: str
    room_name: str
    correlation_id: str


class LiveSessions(Protocol):
    """The live sessions and when each one's room is due to be looked up, shared by every replica."""

    async def track(self, session: LiveSession, first_check_at: float) -> None:
        """Start watching ``session`` (a session already watched keeps its due time)."""
        ...

    async def untrack(self, session_id: str) -> None:
        """Stop watching the session."""
        ...

    async def claim_due(self, now: float, next_check_at: float, limit: int) -> list[LiveSession]:
        """Take up to ``limit`` sessions due at ``now``, each due again at ``next_check_at``."""
        ...


class RoomDirectory(Protocol):
    """Which rooms are open on LiveKit (ListRooms)."""

    async def existing_rooms(self, names: list[str]) -> set[str]:
        """The open ones among ``names``."""
        ...


async def track_change(event: SessionStatusChanged, room_name: str, live: LiveSessions, policy: SweepPolicy) -> None:
    """Watch a session that went live; forget one that is over."""
    if event.to_status in LIVE_STATUSES and room_name:
        session = LiveSession(event.session_id, room_name, event.correlation_id)
        await live.track(session, event.occurred_at.timestamp() + policy.grace_s)
    elif event.to_status in _TERMINAL:
        await live.untrack(event.session_id)


async def sweep_once(
    live: LiveSessions,
    rooms: RoomDirectory,
    publish: Callable[[Event], Awaitable[None]],
    policy: SweepPolicy,
    retry: RetryPolicy,
    clock: Callable[[], float] = time.time,
) -> int:
    """Look up the due sessions' rooms; end each session whose room is gone; return how many were ended."""
    ended = 0
    for _ in range(policy.max_batches):
        now = clock()
        due = await live.claim_due(now, now + policy.interval_s, policy.batch)
        if not due:
            break
        try:
            open_rooms = await _open_rooms(rooms, due, retry)
        except LiveKitError as exc:
            # Nothing is ended on a failed lookup: the claimed sessions are looked at again next interval.
            log.warning("room_sweep_failed", sessions=len(due), reason=str(exc))
            break
        for session in due:
            if session.room_name not in open_rooms:
                await publish(SessionEndRequested(**_ids(session), reason=ROOM_GONE_REASON, code=EndCode.ROOM_CLOSED))
                await live.untrack(session.session_id)
                log.info("room_gone", session_id=session.session_id, room=session.room_name)
                ended += 1
        if len(due) < policy.batch:
            break
    return ended


async def sweep_forever(sweep: Callable[[], Awaitable[int]], interval_s: float) -> None:
    """Sweep every ``interval_s`` until cancelled; a failed sweep is logged and tried again next time."""
    while True:
        try:
            await sweep()
        except Exception as exc:  # noqa: BLE001 - a Redis or broker hiccup must not stop the backstop for good
            log.error("room_sweep_crashed", error=repr(exc))
        await asyncio.sleep(interval_s)


async def _open_rooms(rooms: RoomDirectory, sessions: list[LiveSession], retry: RetryPolicy) -> set[str]:
    names = sorted({session.room_name for session in sessions})
    return await with_retries(retry, lambda: rooms.existing_rooms(names))


def _ids(session: LiveSession) -> dict[str, str]:
    ids = {"session_id": session.session_id}
    return ids | ({"correlation_id": session.correlation_id} if session.correlation_id else {})
