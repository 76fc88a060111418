"""Joining a room on either server: with the real ``livekit.rtc`` SDK on livekit-server, over the room bus on the
simulator (which has no WebRTC)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from livekit import rtc

from devstack.livekit_server import RunningLiveKit
from devstack.room_bus_client import joined_bus


async def is_simulator(server: RunningLiveKit) -> bool:
    """The simulator answers ``GET /sim/state``; livekit-server does not."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        return (await client.get(f"{server.url}/sim/state")).status_code == 200


@asynccontextmanager
async def present(server: RunningLiveKit, token: str) -> AsyncIterator[None]:
    """Be in the room ``token`` names for the block; leave after it."""
    if await is_simulator(server):
        async with joined_bus(server.url, token):
            yield
        return
    room = rtc.Room()
    await room.connect(server.ws_url, token, rtc.RoomOptions(auto_subscribe=False))
    try:
        yield
    finally:
        await room.disconnect()
