"""A frontend in a simulator room: :class:`~devstack.demo.rooms.FrontendRoom` over devstack.room_bus_client."""

from __future__ import annotations

import aiohttp

from devstack.demo.rooms import Packet
from devstack.room_bus_client import BusParticipant, RoomClosedError, join


class BusRoom:
    """:class:`~devstack.demo.rooms.FrontendRoom` over the simulator's room bus (JoinError, RoomClosedError)."""

    def __init__(self, session: aiohttp.ClientSession, livekit_url: str, token: str) -> None:
        """Join through ``session`` (shared, not closed here) with the participant ``token``."""
        self._session = session
        self._livekit_url = livekit_url
        self._token = token
        self._member: BusParticipant | None = None

    async def connect(self, timeout_s: float) -> None:
        """Open the socket and wait for the ``joined`` frame."""
        self._member = await join(self._session, self._livekit_url, self._token, timeout_s=timeout_s)

    async def receive(self, topic: str) -> Packet:
        """The next data packet on ``topic``, with its sender as the simulator stamped it."""
        if self._member is None:
            raise RoomClosedError("not connected")
        frame = await self._member.next_frame("data", topic=topic)
        return Packet(self._member.payload(frame), frame.get("sender_kind") == "agent", frame.get("sender") is None)

    async def disconnect(self) -> None:
        """Close the socket (the simulator announces that the participant left)."""
        if self._member is not None:
            await self._member.close()
            self._member = None
