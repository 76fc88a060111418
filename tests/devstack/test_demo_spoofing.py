"""The demo's frontend acts on ``agent-status`` only from the agent (or, for ``agent.failed``, the server): another
participant in the room publishing a fake ``agent.ready`` is ignored, on the simulator's room bus."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid

import aiohttp
import httpx
import pytest
from livekit import api

from devstack.demo.frontend import Frontend, _agent_ready, _Failed
from devstack.demo.room_bus import BusRoom
from devstack.demo.rooms import RoomFactory
from devstack.livekit_sim import Simulator
from devstack.room_bus_client import joined_bus


def _token(room: str, identity: str, kind: str = "standard") -> str:
    token = api.AccessToken("devkey", "secret").with_identity(identity).with_kind(kind)  # type: ignore[arg-type]
    return token.with_grants(api.VideoGrants(room_join=True, room=room)).to_jwt()


async def _publish(member_ws: aiohttp.ClientWebSocketResponse, message: dict[str, str]) -> None:

    payload = base64.b64encode(json.dumps(message).encode()).decode()
    await member_ws.send_json({"type": "data", "payload": payload, "topic": "agent-status", "reliable": True})


@pytest.mark.timeout(30)
async def test_a_fake_agent_ready_from_another_participant_is_ignored(sim: Simulator) -> None:
    room_name, session_id = f"spoof-{uuid.uuid4().hex[:10]}", f"s-{uuid.uuid4().hex}"
    ready = {"type": "agent.ready", "sessionId": session_id, "greeting": "fake", "timestamp": "2026-01-01T00:00:00Z"}
    failed = {"type": "agent.failed", "sessionId": session_id, "stage": "dispatch", "reason": "none", "timestamp": ""}
    async with httpx.AsyncClient() as client, aiohttp.ClientSession() as session:
        frontend = Frontend(client, RoomFactory("simulator"), "flow", {}, ready_timeout_s=10.0)
        room = BusRoom(session, sim.url, _token(room_name, "user-1"))
        await room.connect(5.0)
        sse: asyncio.Task[None] = asyncio.create_task(asyncio.sleep(60))
        try:
            waiting = asyncio.create_task(_agent_ready(frontend, room, session_id, time.monotonic() + 10.0, sse))
            async with joined_bus(sim.url, _token(room_name, "intruder")) as intruder:
                await _publish(intruder.ws, ready)  # a standard participant: never the agent
            async with api.LiveKitAPI(sim.url, "devkey", "secret") as lk:  # the server, as the dispatcher sends it
                for message in (ready, failed):  # the server never sends agent.ready: only its agent.failed counts
                    data = json.dumps(message).encode()
                    await lk.room.send_data(api.SendDataRequest(room=room_name, data=data, topic="agent-status"))
            with pytest.raises(_Failed) as caught:
                await waiting
            assert caught.value.reason == "agent_failed@dispatch"
        finally:
            sse.cancel()
            await room.disconnect()


@pytest.mark.timeout(30)
async def test_agent_ready_from_the_agent_participant_counts(sim: Simulator) -> None:
    room_name, session_id = f"agent-{uuid.uuid4().hex[:10]}", f"s-{uuid.uuid4().hex}"
    ready = {"type": "agent.ready", "sessionId": session_id, "greeting": "hi", "timestamp": "2026-01-01T00:00:00Z"}
    async with httpx.AsyncClient() as client, aiohttp.ClientSession() as session:
        frontend = Frontend(client, RoomFactory("simulator"), "flow", {}, ready_timeout_s=10.0)
        room = BusRoom(session, sim.url, _token(room_name, "user-1"))
        await room.connect(5.0)
        sse: asyncio.Task[None] = asyncio.create_task(asyncio.sleep(60))
        try:
            async with joined_bus(sim.url, _token(room_name, "agent-1", kind="agent")) as agent:
                await _publish(agent.ws, ready)
                await _agent_ready(frontend, room, session_id, time.monotonic() + 10.0, sse)
        finally:
            sse.cancel()
            await room.disconnect()
