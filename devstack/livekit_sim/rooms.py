"""Room lifecycle: get-or-create (launching the room's dispatches), close, and the idle-room reaper."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import structlog
from livekit.protocol import room

from .jobs import JobLauncher
from .state import Participant, Room, SimState

log = structlog.get_logger("livekit_sim.rooms")

CloseListener = Callable[[str, str], Awaitable[None]]


class RoomManager:
    """Creates and closes rooms; others (the room bus) listen for closes to disconnect participants."""

    def __init__(self, state: SimState, launcher: JobLauncher, reap_interval: float = 1.0) -> None:
        self._state = state
        self._launcher = launcher
        self._reap_interval = reap_interval
        self._listeners: list[CloseListener] = []
        self._reaper: asyncio.Task[None] | None = None

    def add_close_listener(self, listener: CloseListener) -> None:
        """Call ``listener(room_name, reason)`` whenever a room closes."""
        self._listeners.append(listener)

    def get_or_create(self, req: room.CreateRoomRequest) -> tuple[Room, bool]:
        """The room named ``req.name``; a new room launches a job for each of its dispatches."""
        target, created = self._state.get_or_create_room(req)
        if created:
            log.info("room created", room=target.name, sid=target.info.sid)
            for dispatch in list(target.dispatches.values()):
                self._launcher.launch(target, dispatch)
        return target, created

    async def participant_left(self, name: str, participant: Participant) -> None:
        """Someone left a room: an agent's leaving ends its job (the server terminates it, status failed)."""
        if participant.dependent:
            await self._launcher.agent_left(name, participant.identity)

    async def close(self, name: str, reason: str) -> bool:
        """Close a room: forget it, end its jobs, disconnect its participants. False if unknown."""
        if self._state.pop_room(name) is None:
            return False
        log.info("room closed", room=name, reason=reason)
        await self._launcher.terminate_room_jobs(name)
        for listener in self._listeners:
            await listener(name, reason)
        return True

    def start(self) -> None:
        """Start closing idle rooms (empty timeout / departure timeout), as the server does."""
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def aclose(self) -> None:
        """Stop the reaper."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(self._reap_interval)
            now = time.time()
            for name, target in list(self._state.rooms.items()):
                if target.idle_expired(now):
                    await self.close(name, "idle")
