"""The frontend's room seam: join with a token, receive data packets by topic, leave.

Two implementations: the LiveKit simulator's room bus (``room_bus``) and the real ``livekit.rtc.Room``
(``room_rtc``). :class:`RoomFactory` picks one per LiveKit URL by asking whether a simulator answers there.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal, Protocol

import aiohttp

from devstack.room_bus_client import JoinError, RoomClosedError  # the errors every room raises

Backend = Literal["auto", "simulator", "livekit"]
_PROBE_TIMEOUT_S = 3.0
__all__ = [
    "Backend",
    "FrontendRoom",
    "JoinError",
    "Packet",
    "RoomClosedError",
    "RoomFactory",
    "http_url",
    "room_not_created_yet",
]


@dataclass(frozen=True)
class Packet:
    """A data packet and who sent it, as the room reports it (LiveKit stamps the sender; a client cannot forge it)."""

    payload: bytes
    from_agent: bool  # a participant of kind AGENT
    from_server: bool  # no sender: the server API's SendData


class FrontendRoom(Protocol):
    """What a simulated frontend needs from a room."""

    async def connect(self, timeout_s: float) -> None:
        """Join the room; raise JoinError when refused or when it takes longer than ``timeout_s``."""

    async def receive(self, topic: str) -> Packet:
        """The next data packet on ``topic`` (earlier ones are buffered); RoomClosedError if the room closes."""

    async def disconnect(self) -> None:
        """Leave the room; safe to call more than once."""


ROOM_MISSING = "requested room does not exist"  # livekit-server's answer (404) to a join when auto_create is off


def room_not_created_yet(error: JoinError) -> bool:
    """True when a join was refused because the room does not exist (yet): 404 from the bus or the real server."""
    return error.reason == "join_refused_404" or ROOM_MISSING in error.detail


def http_url(url: str) -> str:
    """``url`` with a ws(s):// scheme turned into http(s)://."""
    for ws, http in (("ws://", "http://"), ("wss://", "https://")):
        if url.startswith(ws):
            return http + url[len(ws) :]
    return url


async def is_simulator(session: aiohttp.ClientSession, livekit_url: str) -> bool:
    """True when ``GET {livekit_url}/sim/state`` answers like the devstack simulator."""
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT_S), session.get(f"{http_url(livekit_url)}/sim/state") as response:
            if response.status != 200:
                return False
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return False
    return isinstance(body, dict) and "rooms" in body


class RoomFactory:
    """Builds frontend rooms; one shared HTTP session for every bus socket; the backend is probed once per URL."""

    def __init__(self, backend: Backend = "auto") -> None:
        """``backend``: force one, or ``auto`` to probe each LiveKit URL the API hands out."""
        self._backend = backend
        self._session: aiohttp.ClientSession | None = None
        self._known: dict[str, bool] = {}
        self._lock = asyncio.Lock()
        self.used: set[str] = set()  # the backends rooms were built for, for the report

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:  # no connection cap: every frontend keeps one socket open
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self._session

    async def backend_for(self, livekit_url: str) -> Literal["simulator", "livekit"]:
        """Which room implementation serves ``livekit_url``."""
        if self._backend != "auto":
            self.used.add(self._backend)
            return self._backend
        async with self._lock:
            if livekit_url not in self._known:
                self._known[livekit_url] = await is_simulator(self._http(), livekit_url)
        backend: Literal["simulator", "livekit"] = "simulator" if self._known[livekit_url] else "livekit"
        self.used.add(backend)
        return backend

    async def room(self, livekit_url: str, token: str) -> FrontendRoom:
        """A not-yet-connected room for this URL and token."""
        if await self.backend_for(livekit_url) == "simulator":
            from devstack.demo.room_bus import BusRoom

            return BusRoom(self._http(), livekit_url, token)
        from devstack.demo.room_rtc import RtcRoom  # imports the native SDK only when it is needed

        return RtcRoom(livekit_url, token)

    async def aclose(self) -> None:
        """Close the shared HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
