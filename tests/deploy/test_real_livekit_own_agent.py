"""Against a real LiveKit server: your own agent (AGENT_FACTORY) runs after the readiness protocol made it ready, and
the job still ends the way it always does (the user left, reported on the broker)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from livekit import api, rtc
from redis.asyncio import Redis

from contracts.datachannel import AgentReadyPayload
from contracts.streams import AGENT_JOB_ENDED
from devstack.livekit_server import RunningLiveKit
from services.agent.worker import running_worker
from tests.agent.stream_events import event_for
from tests.deploy.test_real_livekit import TOPIC, agent_settings, frontend_token, job_metadata, keep_livekit_env

__all__ = ["keep_livekit_env"]  # the fixture, used below by name
DEADLINE_S = 60.0


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("keep_livekit_env")
async def test_the_example_agent_runs_after_ready_and_the_job_ends_when_the_user_leaves(
    real_livekit: RunningLiveKit, redis_url: str
) -> None:
    settings = agent_settings(
        real_livekit, redis_url, agent_factory="examples.greeter_agent:build", agent_user_rejoin_grace_seconds=0.5
    )
    metadata = job_metadata(f"real-own-{uuid.uuid4().hex[:10]}")
    received: asyncio.Future[rtc.DataPacket] = asyncio.get_running_loop().create_future()

    def on_data(packet: rtc.DataPacket) -> None:
        if packet.topic == TOPIC and not received.done():
            received.set_result(packet)

    token = frontend_token(settings, metadata.room_name)
    redis = Redis.from_url(redis_url)
    async with (
        running_worker(settings),
        api.LiveKitAPI(settings.livekit_http_url, settings.livekit_api_key, settings.livekit_api_secret) as lk,
    ):
        await lk.room.create_room(api.CreateRoomRequest(name=metadata.room_name))
        room = rtc.Room()
        room.on("data_received", on_data)
        await room.connect(settings.livekit_ws_url, token)  # auto-subscribes: hears the greeting
        try:
            await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(
                    agent_name=settings.livekit_agent_name, room=metadata.room_name, metadata=metadata.to_json()
                )
            )
            packet = await asyncio.wait_for(received, timeout=DEADLINE_S)
            payload = AgentReadyPayload.model_validate_json(packet.data)
            assert payload.sessionId == metadata.session_id
        finally:
            await room.disconnect()  # the user leaves: the job ends, the conversation with it
        try:
            ended = await event_for(redis, AGENT_JOB_ENDED, metadata.session_id, timeout=DEADLINE_S)
        finally:
            await lk.room.delete_room(api.DeleteRoomRequest(room=metadata.room_name))
            await redis.aclose()
    assert (ended["code"], ended["was_ready"]) == ("user_left", True)
