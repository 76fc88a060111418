"""Against a real LiveKit server: your own agent (AGENT_FACTORY) runs behind the readiness protocol unchanged.

The example agent (examples/greeter_agent.py) runs in the session's livekit-agents ``AgentSession``: the frontend
receives the greeting's caption (the session's own text output), then ``agent.ready``; after ready the session goes
on as the conversation (``lk.agent.state`` "listening"), and the job still ends the way it always does (the user
left, reported on the broker)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from livekit import api, rtc
from redis.asyncio import Redis
from structlog.testing import capture_logs

from contracts.datachannel import AgentReadyPayload
from contracts.streams import AGENT_JOB_ENDED
from devstack.livekit_server import RunningLiveKit
from services.agent.worker import running_worker
from tests.agent.stream_events import event_for
from tests.deploy.test_real_livekit import (
    TOPIC,
    agent_settings,
    agent_status_after_dispatch,
    frontend_token,
    job_metadata,
    keep_livekit_env,
)
from tests.polling import wait_until

__all__ = ["keep_livekit_env"]  # the fixture, used below by name
DEADLINE_S = 60.0
TRANSCRIPTION_TOPIC = "lk.transcription"  # livekit-agents' text output (captions)
AGENT_STATE = "lk.agent.state"


def agent_state(room: rtc.Room) -> str | None:
    """The agent participant's conversation state, as livekit-agents publishes it."""
    agents = [p for p in room.remote_participants.values() if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT]
    return agents[0].attributes.get(AGENT_STATE) if agents else None


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

    captions: list[str] = []
    readers: list[asyncio.Task[None]] = []

    def on_data(packet: rtc.DataPacket) -> None:
        if packet.topic == TOPIC and not received.done():
            received.set_result(packet)

    async def read_caption(reader: rtc.TextStreamReader) -> None:
        captions.append(await reader.read_all())

    def on_caption(reader: rtc.TextStreamReader, _identity: str) -> None:
        readers.append(asyncio.create_task(read_caption(reader)))

    token = frontend_token(settings, metadata.room_name)
    redis = Redis.from_url(redis_url)
    with capture_logs() as logs:
        async with (
            running_worker(settings),
            api.LiveKitAPI(settings.livekit_http_url, settings.livekit_api_key, settings.livekit_api_secret) as lk,
        ):
            await lk.room.create_room(api.CreateRoomRequest(name=metadata.room_name))
            room = rtc.Room()
            room.on("data_received", on_data)
            room.register_text_stream_handler(TRANSCRIPTION_TOPIC, on_caption)
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
                await wait_until(lambda: agent_state(room) == "listening", deadline_s=10.0, what="the conversation")
                await wait_until(lambda: metadata.greeting in "".join(captions), deadline_s=5.0, what="the caption")
            finally:
                for task in readers:
                    task.cancel()
                await room.disconnect()  # the user leaves: the job ends, the conversation with it
            try:
                ended = await event_for(redis, AGENT_JOB_ENDED, metadata.session_id, timeout=DEADLINE_S)
            finally:
                await lk.room.delete_room(api.DeleteRoomRequest(room=metadata.room_name))
                await redis.aclose()
    assert (ended["code"], ended["was_ready"]) == ("user_left", True)
    started = [entry for entry in logs if entry.get("event") == "conversation_started"]
    assert [entry["agent"] for entry in started] == ["GreeterAgent"], logs


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("keep_livekit_env")
async def test_without_waiting_for_the_user_the_agent_is_ready_without_speaking(
    real_livekit: RunningLiveKit, redis_url: str
) -> None:
    # AGENT_WAIT_FOR_USER=false (curl against `make dev`): nothing waits for a listener that may never come
    settings = agent_settings(real_livekit, redis_url, agent_wait_for_user=False, agent_user_wait_seconds=1.0)
    metadata = job_metadata(f"real-nouser-{uuid.uuid4().hex[:10]}")
    with capture_logs() as logs:
        async with agent_status_after_dispatch(settings, metadata, auto_subscribe=False) as received:
            packet = await asyncio.wait_for(received, timeout=DEADLINE_S)
    assert AgentReadyPayload.model_validate_json(packet.data).sessionId == metadata.session_id
    events = [entry.get("event") for entry in logs]
    assert "greeting_not_spoken" in events and "conversation_started" not in events
