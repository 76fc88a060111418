"""Is the agent in a session's room right now, since when, in which state: one question to LiveKit, answered at once.

The successor of the old blocking ``waitForAgent`` (which polled for the agent participant for up to 15 s): this
asks once and says what it found. ``state`` is LiveKit's own participant attribute ``lk.agent.state``
(initializing, listening, thinking, speaking), set by livekit-agents before any greeting; the session's ``ready``
status is stricter (the greeting was heard). No LiveKit types here: the adapter is
:mod:`services.api.livekit_room_reader`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

AGENT_STATE_ATTRIBUTE = "lk.agent.state"


@dataclass(frozen=True)
class Participant:
    """One participant of a room as LiveKit lists it."""

    identity: str
    is_agent: bool
    joined_at_ms: int
    attributes: dict[str, str]


@dataclass(frozen=True)
class Presence:
    """What LiveKit said about the session's room."""

    room_name: str
    room_exists: bool
    in_room: bool
    agent_identity: str | None
    joined_at: datetime | None
    state: str | None
    participants: int
    agents: int


class RoomReader(Protocol):
    """Reads a room's participants from LiveKit."""

    async def participants(self, room_name: str) -> Sequence[Participant]:
        """Everyone in the room now (an empty list for an empty room or one that does not exist)."""
        ...

    async def room_exists(self, room_name: str) -> bool:
        """Whether LiveKit has the room open."""
        ...


class LiveKitUnavailableError(Exception):
    """LiveKit did not answer (in time, or at all): answered with 503."""


def presence_of(room_name: str, participants: Sequence[Participant], *, room_exists: bool = True) -> Presence:
    """The presence answer for a room's participants: the agent that joined first (a duplicate is counted)."""
    agents = sorted((p for p in participants if p.is_agent), key=lambda p: p.joined_at_ms)
    agent = agents[0] if agents else None
    return Presence(
        room_name=room_name,
        room_exists=room_exists,
        in_room=agent is not None,
        agent_identity=agent.identity if agent else None,
        joined_at=datetime.fromtimestamp(agent.joined_at_ms / 1000, UTC) if agent and agent.joined_at_ms else None,
        state=agent.attributes.get(AGENT_STATE_ATTRIBUTE) if agent else None,
        participants=len(participants),
        agents=len(agents),
    )


async def check_presence(room_name: str, rooms: RoomReader) -> Presence:
    """Ask LiveKit once for the room's participants; only when nobody is there, whether the room exists at all
    (ListParticipants answers an empty list for both)."""
    participants = await rooms.participants(room_name)
    exists = True if participants else await rooms.room_exists(room_name)
    return presence_of(room_name, participants, room_exists=exists)
