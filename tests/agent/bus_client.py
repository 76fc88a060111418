"""A test participant on the simulator's room bus: joins with a token and collects every frame."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from livekit import api


def participant_token(
    room: str, identity: str, *, kind: str = "standard", key: str = "devkey", secret: str = "secret"
) -> str:
    """A join token like the API hands to frontends."""
    token = api.AccessToken(key, secret).with_identity(identity).with_kind(kind)  # type: ignore[arg-type]
    return token.with_grants(api.VideoGrants(room_join=True, room=room)).to_jwt()


class BusParticipant:
    """The frames one participant received, for assertions with deadlines."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, joined: dict[str, Any]) -> None:
        self.ws = ws
        self.joined = joined
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def next_frame(self, kind: str, timeout: float, topic: str | None = None) -> dict[str, Any]:
        """The next frame of ``kind`` (and ``topic``), skipping others; TimeoutError after ``timeout``."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.frames.get()
                if frame.get("type") == kind and (topic is None or frame.get("topic") == topic):
                    return frame

    @staticmethod
    def payload(frame: dict[str, Any]) -> bytes:
        """The raw bytes of a ``data`` frame."""
        return base64.b64decode(frame["payload"])


@asynccontextmanager
async def join_bus(base_url: str, token: str) -> AsyncIterator[BusParticipant]:
    """Join the room bus at ``base_url`` (http://) and read frames in the background until exit."""
    url = base_url.replace("http://", "ws://").rstrip("/") + "/sim/rtc"
    async with aiohttp.ClientSession() as session, session.ws_connect(url, params={"access_token": token}) as ws:
        async with asyncio.timeout(5.0):
            joined = await ws.receive_json()
        member = BusParticipant(ws, joined)

        async def read() -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await member.frames.put(json.loads(msg.data))

        reader = asyncio.create_task(read())
        try:
            yield member
        finally:
            reader.cancel()
            await ws.close()
