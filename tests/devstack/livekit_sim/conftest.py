"""Fixtures for the simulator tests: the real API client and a bus client (``sim`` is in tests/conftest.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from livekit import api

from devstack.livekit_sim import Simulator

API_KEY = "devkey"
API_SECRET = "secret"


@pytest.fixture
async def lkapi(sim: Simulator) -> AsyncIterator[api.LiveKitAPI]:
    """The real livekit-api client pointed at the simulator."""
    client = api.LiveKitAPI(sim.url, API_KEY, API_SECRET)
    yield client
    await client.aclose()


@pytest.fixture
def room_name() -> str:
    """A unique room name per test."""
    return f"room-{uuid.uuid4().hex[:10]}"


def participant_token(room: str, identity: str, *, secret: str = API_SECRET, **kwargs: Any) -> str:
    """A participant token as a backend mints it."""
    token = (
        api.AccessToken(API_KEY, secret).with_identity(identity).with_grants(api.VideoGrants(room_join=True, room=room))
    )
    if "ttl" in kwargs:
        token = token.with_ttl(kwargs["ttl"])
    if "kind" in kwargs:
        token = token.with_kind(kwargs["kind"])
    return token.to_jwt()


class BusClient:
    """A test-side client of the room bus (the protocol in devstack/livekit_sim/README.md)."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.session = session
        self.ws = ws
        self.joined: dict[str, Any] = {}

    @classmethod
    async def connect(cls, sim: Simulator, token: str, **params: str) -> BusClient:
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(f"{sim.ws_url}/sim/rtc", params={"access_token": token, **params})
        except BaseException:
            await session.close()
            raise
        client = cls(session, ws)
        client.joined = await client.next_frame("joined")
        return client

    async def next_frame(self, kind: str, deadline: float = 3.0) -> dict[str, Any]:
        """The next frame of type ``kind`` (others are skipped), within ``deadline`` seconds."""
        async with asyncio.timeout(deadline):
            while True:
                frame: dict[str, Any] = json.loads(await self.ws.receive_str())
                if frame["type"] == kind:
                    return frame

    async def send_data(self, payload: bytes, topic: str, reliable: bool = True, to: list[str] | None = None) -> None:
        await self.ws.send_json(
            {
                "type": "data",
                "payload": base64.b64encode(payload).decode(),
                "topic": topic,
                "reliable": reliable,
                "destination_identities": to or [],
            }
        )

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()
