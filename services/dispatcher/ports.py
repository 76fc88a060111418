"""The dispatcher's view of LiveKit: a port, and the two kinds of failure it can report."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol


class LiveKitError(Exception):
    """A LiveKit server API call failed."""


class TransientLiveKitError(LiveKitError):
    """Worth retrying: connection errors, 5xx, ``unavailable``."""


class PermanentLiveKitError(LiveKitError):
    """Retrying cannot help (4xx such as ``permission_denied``): the message says what to fix."""


class LiveKitRooms(Protocol):
    """Room and dispatch operations the dispatcher needs; implementations must be idempotent."""

    async def ensure_room(self, room_name: str, metadata: str) -> None:
        """Create the room, or accept the one that exists (get-or-create)."""
        ...

    async def ensure_dispatch(self, room_name: str, metadata: str) -> str:
        """Return the id of the room's dispatch of our agent, creating it only if there is none."""
        ...


class RoomLocks(Protocol):
    """Mutual exclusion per room across every dispatcher replica, so two deliveries of one request
    cannot both see "no dispatch yet" and both create one."""

    def hold(self, room_name: str) -> AbstractAsyncContextManager[None]:
        """Hold the room's lock for the block (bounded wait, expires if the holder dies)."""
        ...
