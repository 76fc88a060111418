"""The dispatcher's ports: LiveKit, room locks, the session ledger; and the kinds of LiveKit failure.

(The event publisher is the shared :class:`services.runtime.publishing.EventPublisher`.)"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from services.dispatcher.dispatch_state import DispatchState


class LiveKitError(Exception):
    """A LiveKit server API call failed."""


class TransientLiveKitError(LiveKitError):
    """Worth retrying: connection errors, 5xx, ``unavailable``."""


class PermanentLiveKitError(LiveKitError):
    """Retrying cannot help (4xx such as ``permission_denied``): the message says what to fix."""


class LiveKitNotFoundError(PermanentLiveKitError):
    """The room, dispatch or participant does not exist (``not_found``)."""


@dataclass(frozen=True)
class JobState:
    """One ListDispatch of a room: when (epoch s) a worker took the dispatch's job (None: dropped, never offered,
    or ended), and the ids of every dispatch of our agent in the room."""

    started_at: float | None
    ours: tuple[str, ...] = ()


class LiveKitRooms(Protocol):
    """Room and dispatch operations the dispatcher needs; implementations must be idempotent."""

    @property
    def agent_name(self) -> str:
        """The agent name every dispatch is made for (LIVEKIT_AGENT_NAME)."""
        ...

    async def ensure_room(self, room_name: str, metadata: str) -> None:
        """Create the room, or accept the one that exists (get-or-create)."""
        ...

    async def create_room_and_dispatch(self, room_name: str, metadata: str) -> str:
        """A session's first try (nothing of it exists yet): the room and our agent's dispatch; the dispatch's id,
        or "" when LiveKit made the dispatch with the room and did not say its id."""
        ...

    async def our_dispatches(self, room_name: str) -> list[str]:
        """The ids of the room's dispatches of our agent (see :mod:`services.dispatcher.dispatch_dedup`)."""
        ...

    async def create_dispatch(self, room_name: str, metadata: str) -> str:
        """Add a dispatch of our agent to the room (never de-duplicated by LiveKit); return its id."""
        ...

    async def agent_present(self, room_name: str) -> bool:
        """Whether an agent of ours is in the room right now (a missing room has none)."""
        ...

    async def replace_dispatch(self, room_name: str, metadata: str, listed: tuple[str, ...] | None = None) -> str:
        """Delete every dispatch of our agent in the room (creating the room if it closed), then
        create one; return its id. ``listed``: our dispatches as listed just before under the room's lock (nothing
        of ours changes there meanwhile), so they need not be listed again."""
        ...

    async def remove_room(self, room_name: str, *, agent_joined: bool = False) -> None:
        """Delete our dispatches and the room; a room that is already gone is success. ``agent_joined``: the room's
        only dispatch of ours has its agent in the room (no job of it can start later): deleting the room suffices."""
        ...

    async def job_state(self, room_name: str, dispatch_id: str) -> JobState:
        """When (epoch s) a worker took the dispatch's job, if one did and the job has not ended (None for a
        job that was dropped or never offered: no worker, every worker full); and our dispatches in the room."""
        ...

    async def existing_rooms(self, names: list[str]) -> set[str]:
        """Which of ``names`` are open rooms on LiveKit right now (one ListRooms call)."""
        ...


class RoomLocks(Protocol):
    """Mutual exclusion per room across every dispatcher replica, so two deliveries of one request
    cannot both see "no dispatch yet" and both create one."""

    def hold(self, room_name: str) -> AbstractAsyncContextManager[None]:
        """Hold the room's lock for the block (bounded wait, expires if the holder dies)."""
        ...


@dataclass(frozen=True)
class SessionRecord:
    """What the dispatcher remembers of a session between messages and across replicas."""

    session_id: str
    room_name: str
    metadata: str
    correlation_id: str
    state: DispatchState
    dispatch_id: str = ""
    attempt: int = 0
    ready_deadline: float = 0.0  # epoch s; 0: unknown (a record written before deadlines were kept)
    failure_code: str = ""  # the dispatcher's own failure code, once it failed the session
    told_failure: bool = False  # the room was sent agent.failed by the dispatcher


class SessionLedger(Protocol):
    """Per-session dispatch state and the watchdog's deadlines, shared by every replica.

    States: :class:`~services.dispatcher.dispatch_state.DispatchState` (``requested`` -> ``watching`` (armed) ->
    ``joined`` | ``closed``). A closed session is never dispatched again; a joined or closed one is never armed again.
    """

    async def remember(
        self, session_id: str, room_name: str, metadata: str, correlation_id: str, ready_deadline: float = 0.0
    ) -> DispatchState:
        """Record a requested session and its readiness deadline (epoch s; first write wins); return its state."""
        ...

    async def remember_try(
        self, session_id: str, room_name: str, metadata: str, correlation_id: str, ready_deadline: float = 0.0
    ) -> tuple[DispatchState, int]:
        """:meth:`remember`, counting a try to dispatch the session: return its state and how many tries began
        before this one (0: nobody ever tried, so no dispatch of it can exist; callers hold the room's lock)."""
        ...

    async def get(self, session_id: str) -> SessionRecord | None:
        """The record, if any."""
        ...

    async def arm(self, session_id: str, dispatch_id: str, attempt: int, deadline: float) -> bool:
        """Watch a ``requested`` session until ``deadline`` (epoch s); False if it is in any other state."""
        ...

    async def rearm(self, session_id: str, dispatch_id: str, attempt: int, deadline: float) -> bool:
        """Record a re-dispatch of a ``watching`` session and its new deadline; False otherwise."""
        ...

    async def claim_due(self, now: float, lease_s: float, limit: int) -> list[SessionRecord]:
        """Atomically take up to ``limit`` watches past their deadline, each pushed ``lease_s`` later
        (so another replica takes it again only if this one dies before it is settled)."""
        ...

    async def waiting(self) -> int:
        """How many sessions are armed and wait for their agent, across every replica."""
        ...

    async def next_due(self) -> float | None:
        """The earliest watch deadline (epoch s; a claimed watch's is its lease's end), None when nothing is watched."""
        ...

    async def mark_joined(self, session_id: str) -> None:
        """An agent joined: stop watching."""
        ...

    async def mark_all_joined(self, session_ids: list[str]) -> None:
        """:meth:`mark_joined` for each of ``session_ids`` (one round trip where the store allows)."""
        ...

    async def close(self, session_id: str) -> SessionRecord | None:
        """The session is over (or given up): never dispatch or watch it again; return its record."""
        ...

    async def note_failure(self, session_id: str, code: str, told: bool) -> None:
        """Record why the session failed (``code``, if not empty) and whether its room was told (then a
        redelivery or a later trigger does not tell it again)."""
        ...
