"""The agent waits for the user, never for a watcher (monitor/supervisor/admin) who joined first."""

from __future__ import annotations

import uuid

import pytest
from livekit import api

from devstack.livekit_sim import run_simulator
from services.agent.room_simulator import SimulatorRoom
from services.api.tokens import watcher_token
from tests.agent.bus_client import join_bus, participant_token


def visible_watcher_token(room: str, identity: str, role: str) -> str:
    """A watcher token that is *not* hidden: only its role attribute tells it from the user."""
    token = api.AccessToken("devkey", "secret").with_identity(identity).with_attributes({"agentready.role": role})
    return token.with_grants(api.VideoGrants(room_join=True, room=room)).to_jwt()


async def test_watchers_joining_first_do_not_count_as_the_user() -> None:
    room_name = f"room-{uuid.uuid4().hex[:10]}"
    hidden = watcher_token("devkey", "secret", room_name=room_name, identity="admin-1", role="admin", ttl_s=60)
    async with (
        run_simulator() as sim,
        join_bus(sim.url, hidden),
        join_bus(sim.url, visible_watcher_token(room_name, "monitor-1", "monitor")),
    ):
        room = SimulatorRoom(sim.ws_url, participant_token(room_name, "agent-1", kind="agent"))
        await room.connect()
        try:
            with pytest.raises(TimeoutError):
                await room.wait_for_participant(0.3)
            async with join_bus(sim.url, participant_token(room_name, "user-1")):
                assert await room.wait_for_participant(5.0) == "user-1"
        finally:
            await room.disconnect()
