"""``SimulatorRoom`` against the real LiveKit simulator (in-process): join, presence, data, leave."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from devstack.livekit_sim import Simulator, run_simulator
from services.agent.room_simulator import SimulatorRoom, bus_url
from tests.agent.bus_client import join_bus, participant_token


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    async with run_simulator() as sim:
        yield sim


def test_bus_url_accepts_http_and_ws_schemes() -> None:
    assert bus_url("http://h:1") == "ws://h:1/sim/rtc"
    assert bus_url("https://h/") == "wss://h/sim/rtc"
    assert bus_url("ws://h:1") == "ws://h:1/sim/rtc"


async def test_agent_sees_user_sends_data_and_notices_the_user_leaving(simulator: Simulator) -> None:
    room_name, user = f"room-{uuid.uuid4().hex}", f"user-{uuid.uuid4().hex[:8]}"
    agent_room = SimulatorRoom(simulator.ws_url, participant_token(room_name, "agent-1", kind="agent"))
    await agent_room.connect()
    try:
        async with join_bus(simulator.url, participant_token(room_name, user)) as member:
            assert await agent_room.wait_for_participant(timeout=5.0) == user
            await agent_room.publish_data(b'{"hello":1}', topic="agent-status", reliable=True)
            frame = await member.next_frame("data", timeout=5.0, topic="agent-status")
            assert member.payload(frame) == b'{"hello":1}'
            assert (frame["sender"], frame["reliable"]) == ("agent-1", True)
        # the user left: the agent's session is over
        async with asyncio.timeout(5.0):
            await agent_room.wait_until_over(user)
    finally:
        await agent_room.disconnect()
    await agent_room.disconnect()  # idempotent


async def test_user_already_in_the_room_is_found_at_once(simulator: Simulator) -> None:
    room_name = f"room-{uuid.uuid4().hex}"
    async with join_bus(simulator.url, participant_token(room_name, "early-user")):
        agent_room = SimulatorRoom(simulator.url, participant_token(room_name, "agent-2", kind="agent"))
        await agent_room.connect()
        try:
            assert await agent_room.wait_for_participant(timeout=1.0) == "early-user"
        finally:
            await agent_room.disconnect()


async def test_other_agents_are_not_users(simulator: Simulator) -> None:
    room_name = f"room-{uuid.uuid4().hex}"
    async with join_bus(simulator.url, participant_token(room_name, "other-agent", kind="agent")):
        agent_room = SimulatorRoom(simulator.url, participant_token(room_name, "agent-3", kind="agent"))
        await agent_room.connect()
        try:
            with pytest.raises(TimeoutError):
                await agent_room.wait_for_participant(timeout=0.2)
        finally:
            await agent_room.disconnect()


async def test_bad_token_is_refused(simulator: Simulator) -> None:
    agent_room = SimulatorRoom(simulator.url, "not-a-jwt")
    with pytest.raises(Exception, match=r"401|Invalid response status"):
        await agent_room.connect()
