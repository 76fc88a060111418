"""The API's LiveKit adapter: reads rooms' participants through the server API (livekit-api), with a bounded timeout.

The API otherwise never calls LiveKit (the dispatcher owns rooms and dispatches); this one reads for operators.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import aiohttp
from livekit import api
from psycopg_pool import AsyncConnectionPool
from pydantic import Field

from services.api.presence import LiveKitUnavailableError, Participant, Presence, check_presence
from services.api.repository import ApiRepository
from services.api.schemas import PresenceOut
from services.runtime.settings import LiveKitSettings

T = TypeVar("T")


class LiveKitRoomReader:
    """:class:`~services.api.presence.RoomReader` on livekit-api; the client (an aiohttp session) is made on first
    use, inside the running event loop, and closed by :meth:`aclose`."""

    def __init__(self, url: str, api_key: str, api_secret: str, timeout_s: float) -> None:
        self._url, self._key, self._secret = url, api_key, api_secret
        self._timeout_s = timeout_s
        self._client: api.LiveKitAPI | None = None

    def _lk(self) -> api.LiveKitAPI:
        if self._client is None:
            timeout = aiohttp.ClientTimeout(total=self._timeout_s)
            self._client = api.LiveKitAPI(self._url, self._key, self._secret, timeout=timeout)
        return self._client

    async def participants(self, room_name: str) -> list[Participant]:
        """ListParticipants for the room."""
        response = await self._call(self._lk().room.list_participants(api.ListParticipantsRequest(room=room_name)))
        return [
            Participant(
                identity=p.identity,
                is_agent=p.kind == api.ParticipantInfo.Kind.AGENT,
                joined_at_ms=p.joined_at_ms or p.joined_at * 1000,
                attributes=dict(p.attributes),
            )
            for p in response.participants
        ]

    async def room_exists(self, room_name: str) -> bool:
        """ListRooms by name."""
        response = await self._call(self._lk().room.list_rooms(api.ListRoomsRequest(names=[room_name])))
        return any(room.name == room_name for room in response.rooms)

    async def _call(self, request: Awaitable[T]) -> T:
        """One server API call; any failure to get an answer is LiveKitUnavailableError, saying which and why."""
        try:
            return await asyncio.wait_for(request, self._timeout_s)  # aiohttp's timeout, and DNS and TLS too
        except api.TwirpError as exc:
            raise LiveKitUnavailableError(
                f"LiveKit at {self._url} refused the request ({exc.code}: {exc.message}); "
                "check LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET"
            ) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise LiveKitUnavailableError(
                f"LiveKit at {self._url} did not answer within {self._timeout_s:g} s ({type(exc).__name__}); retry"
            ) from exc

    async def aclose(self) -> None:
        """Close the client, if one was made."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


class PresenceSettings(LiveKitSettings):
    """What the presence command needs: the database (where the session's room is recorded) and LiveKit."""

    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    livekit_api_timeout_s: float = Field(default=3.0, gt=0, le=30)


async def presence_check(settings: PresenceSettings, session_id: str) -> PresenceOut | None:
    """The operators' CLI: the session's room from PostgreSQL (any organisation), then LiveKit once; None when the
    session is unknown."""
    async with AsyncConnectionPool(settings.database_url, min_size=1, max_size=1, open=False) as pool:
        await pool.open(wait=True, timeout=10)
        found = await ApiRepository(pool).session_room(session_id)
    if found is None:
        return None
    room_name, status = found
    rooms = LiveKitRoomReader(
        settings.livekit_http_url, settings.livekit_api_key, settings.livekit_api_secret, settings.livekit_api_timeout_s
    )
    try:
        presence = await check_presence(room_name, rooms)
    finally:
        await rooms.aclose()
    return presence_out(session_id, status, presence)


def presence_out(session_id: str, status: str, found: Presence) -> PresenceOut:
    """The route's and the CLI's answer."""
    return PresenceOut(
        session_id=session_id,
        room_name=found.room_name,
        room_exists=found.room_exists,
        in_room=found.in_room,
        agent_identity=found.agent_identity,
        joined_at=found.joined_at,
        state=found.state,
        participants=found.participants,
        agents=found.agents,
        session_status=status,
    )
