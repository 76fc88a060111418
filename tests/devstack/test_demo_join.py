"""The demo's frontend joins a room the dispatcher creates just after the 202: with ``room.auto_create: false`` a join
that comes first is refused (404) and tried again, within the join timeout."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from livekit import api

from devstack.demo.frontend import Frontend, _join
from devstack.demo.rooms import JoinError, RoomFactory
from devstack.livekit_sim import Simulator, SimulatorConfig, run_simulator


@pytest.fixture
async def strict_sim() -> AsyncIterator[Simulator]:
    async with run_simulator(config=SimulatorConfig(auto_create=False)) as sim:
        yield sim


def _token(room: str) -> str:
    grants = api.VideoGrants(room_join=True, room=room)
    return api.AccessToken("devkey", "secret").with_identity("user-1").with_grants(grants).to_jwt()


@pytest.mark.timeout(30)
async def test_a_join_before_the_room_exists_is_tried_again_until_it_does(strict_sim: Simulator) -> None:
    room_name = f"late-{uuid.uuid4().hex[:10]}"
    rooms = RoomFactory("simulator")

    async def create_later() -> None:
        await asyncio.sleep(0.3)
        async with api.LiveKitAPI(strict_sim.url, "devkey", "secret") as lk:
            await lk.room.create_room(api.CreateRoomRequest(name=room_name))

    async with httpx.AsyncClient() as client:
        frontend = Frontend(client, rooms, "flow", {}, join_timeout_s=10.0)
        creating = asyncio.create_task(create_later())
        room = await _join(frontend, strict_sim.url, _token(room_name))
        await creating
        await room.disconnect()
    await rooms.aclose()
    assert room_name in strict_sim.state.rooms


@pytest.mark.timeout(30)
async def test_a_room_that_never_comes_fails_the_join_at_its_timeout(strict_sim: Simulator) -> None:
    rooms = RoomFactory("simulator")
    async with httpx.AsyncClient() as client:
        frontend = Frontend(client, rooms, "flow", {}, join_timeout_s=1.0)
        started = time.monotonic()
        with pytest.raises(JoinError) as refused:
            await _join(frontend, strict_sim.url, _token(f"never-{uuid.uuid4().hex[:10]}"))
    await rooms.aclose()
    assert refused.value.reason == "join_refused_404"
    assert time.monotonic() - started < 3.0
