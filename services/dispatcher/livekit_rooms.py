"""LiveKit adapter: the real livekit-api client, errors sorted into transient and permanent."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import aiohttp
from livekit import api

from services.dispatcher.ports import PermanentLiveKitError, TransientLiveKitError

T = TypeVar("T")

# Retrying helps for these; any other 4xx (bad credentials, missing grant, bad argument) is permanent.
_TRANSIENT_CODES = frozenset({"unavailable", "deadline_exceeded", "resource_exhausted"})


class LiveKitRoomsClient:
    """Rooms and dispatches through the server API, at most ``max_in_flight`` requests at a time."""

    def __init__(self, lk: api.LiveKitAPI, agent_name: str, room_options: api.CreateRoomRequest, max_in_flight: int):
        self._lk = lk
        self._agent_name = agent_name
        self._room_options = room_options
        self._in_flight = asyncio.Semaphore(max_in_flight)

    async def ensure_room(self, room_name: str, metadata: str) -> None:
        """CreateRoom is get-or-create on the server, so a retry or redelivery is harmless."""
        request = api.CreateRoomRequest()
        request.CopyFrom(self._room_options)
        request.name = room_name
        request.metadata = metadata
        await self._call(self._lk.room.create_room(request), f"create room {room_name}")

    async def ensure_dispatch(self, room_name: str, metadata: str) -> str:
        """CreateDispatch is not de-duplicated by the server: look for ours first."""
        existing = await self._call(self._lk.agent_dispatch.list_dispatch(room_name), f"list dispatches of {room_name}")
        for dispatch in existing:
            if dispatch.agent_name == self._agent_name:
                return str(dispatch.id)
        created = await self._call(
            self._lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name=self._agent_name, room=room_name, metadata=metadata)
            ),
            f"dispatch agent {self._agent_name!r} to {room_name}",
        )
        return str(created.id)

    async def _call(self, call: Awaitable[T], what: str) -> T:
        async with self._in_flight:
            try:
                return await call
            except api.TwirpError as exc:
                message = f"{what}: LiveKit answered {exc.status} {exc.code}: {exc.message}"
                if exc.status >= 500 or exc.status == 429 or exc.code in _TRANSIENT_CODES:
                    raise TransientLiveKitError(message) from exc
                raise PermanentLiveKitError(_advice(exc.status, message)) from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TransientLiveKitError(f"{what}: cannot reach LiveKit ({type(exc).__name__}: {exc})") from exc


def _advice(status: int, message: str) -> str:
    # The server answers 401 both for a bad token and for a missing grant ("permissions denied").
    if status in (401, 403):
        return (
            f"{message} (check LIVEKIT_API_KEY / LIVEKIT_API_SECRET and that the key may create rooms and dispatches)"
        )
    return message
