"""Against a real LiveKit server: the real agent worker takes an explicit dispatch, and a frontend that joins with
the real livekit rtc SDK receives ``agent.ready`` (or ``agent.failed``) on the data topic ``agent-status``,
byte-exact, from the agent's participant (kind agent).

The server is the session's ``real_livekit`` (tests/conftest.py): LIVEKIT_URL if given, else ``livekit-server --dev``
found or built by devstack.livekit_server; skipped (failed under CI=true) when there is none.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from livekit import api, rtc

from contracts.datachannel import AgentFailedPayload, AgentReadyPayload
from contracts.job import AgentJobMetadata
from devstack.livekit_server import RunningLiveKit
from services.agent.settings import AgentSettings
from services.agent.worker import running_worker

TOPIC = "agent-status"
READY_DEADLINE_S = 60.0


@pytest.fixture
def keep_livekit_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # AgentServer.run() exports LIVEKIT_URL/API_KEY/API_SECRET into os.environ: restore them afterwards
    for key in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])
        else:
            monkeypatch.delenv(key, raising=False)


def agent_settings(server: RunningLiveKit, redis_url: str, **overrides: Any) -> AgentSettings:
    """The agent service's settings for the real server, with a unique agent name."""
    values: dict[str, Any] = {
        "livekit_url": server.url,
        "livekit_api_key": server.api_key,
        "livekit_api_secret": server.api_secret,
        "livekit_agent_name": f"agentready-real-{uuid.uuid4().hex[:10]}",
        "dev_mode": server.api_secret == "secret",
        "redis_url": redis_url,
        "agent_room_backend": "livekit",
        "agent_job_executor": "thread",
        "agent_load_threshold": float("inf"),
        # load = jobs / 20, not this machine's CPU: livekit-server offers no job to a worker at load >= 0.7
        "agent_max_jobs": 20,
        "agent_http_port": 0,
        "agent_user_wait_seconds": 30.0,
        "agent_speak_ms_per_char": 1.0,
        "api_internal_url": "",  # no API here: the greeting comes from the dispatch metadata
        **overrides,
    }
    return AgentSettings(**values)


def job_metadata(room_name: str) -> AgentJobMetadata:
    """What the dispatcher would put in the dispatch."""
    return AgentJobMetadata(
        session_id=str(uuid.uuid4()),
        flow_id=str(uuid.uuid4()),
        org_id=str(uuid.uuid4()),
        room_name=room_name,
        greeting="Hello from a real LiveKit server!",
        correlation_id=str(uuid.uuid4()),
    )


def frontend_token(settings: AgentSettings, room_name: str) -> str:
    """A user's token for ``room_name``: joins, publishes and subscribes like a browser frontend."""
    grants = api.VideoGrants(room_join=True, room=room_name)
    identity = f"frontend-{uuid.uuid4().hex[:8]}"
    return (
        api.AccessToken(settings.livekit_api_key, settings.livekit_api_secret)
        .with_identity(identity)
        .with_grants(grants)
        .to_jwt()
    )


@asynccontextmanager
async def agent_status_after_dispatch(
    settings: AgentSettings, metadata: AgentJobMetadata, *, auto_subscribe: bool = True
) -> AsyncIterator[asyncio.Future[rtc.DataPacket]]:
    """With the real worker running, a frontend joins the room (before the agent greets), the agent is dispatched:
    yields the first ``agent-status`` packet the frontend will receive; the room is deleted afterwards."""
    room_name = metadata.room_name
    token = frontend_token(settings, room_name)
    received: asyncio.Future[rtc.DataPacket] = asyncio.get_running_loop().create_future()

    def on_data(packet: rtc.DataPacket) -> None:
        if packet.topic == TOPIC and not received.done():
            received.set_result(packet)

    async with (
        running_worker(settings),
        api.LiveKitAPI(settings.livekit_http_url, settings.livekit_api_key, settings.livekit_api_secret) as lk,
    ):
        await lk.room.create_room(api.CreateRoomRequest(name=room_name))
        room = rtc.Room()
        room.on("data_received", on_data)
        await room.connect(settings.livekit_ws_url, token, rtc.RoomOptions(auto_subscribe=auto_subscribe))
        try:
            await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(
                    agent_name=settings.livekit_agent_name, room=room_name, metadata=metadata.to_json()
                )
            )
            yield received
        finally:
            await room.disconnect()
            await lk.room.delete_room(api.DeleteRoomRequest(room=room_name))


def assert_from_the_agent(packet: rtc.DataPacket) -> None:
    """Sent by the agent's own participant, which the frontend's SDK knows by then."""
    assert packet.participant is not None, "agent-status came from a participant the frontend does not know"
    assert packet.participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("keep_livekit_env")
async def test_a_frontend_receives_agent_ready_from_the_real_worker(
    real_livekit: RunningLiveKit, redis_url: str
) -> None:
    metadata = job_metadata(f"real-{uuid.uuid4().hex[:10]}")
    async with agent_status_after_dispatch(agent_settings(real_livekit, redis_url), metadata) as received:
        packet = await asyncio.wait_for(received, timeout=READY_DEADLINE_S)
    payload = AgentReadyPayload.model_validate_json(packet.data)
    assert (payload.sessionId, payload.greeting) == (metadata.session_id, metadata.greeting)
    assert packet.data == payload.to_bytes()  # byte-exact: the contract's compact serialisation, nothing else
    assert_from_the_agent(packet)


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("keep_livekit_env")
async def test_a_frontend_receives_agent_failed_when_the_agent_cannot_get_ready(
    real_livekit: RunningLiveKit, redis_url: str
) -> None:
    settings = agent_settings(real_livekit, redis_url, agent_tts="no-such-speaker")  # fails at stage "providers"
    metadata = job_metadata(f"real-failed-{uuid.uuid4().hex[:10]}")
    async with agent_status_after_dispatch(settings, metadata) as received:
        packet = await asyncio.wait_for(received, timeout=READY_DEADLINE_S)
    payload = AgentFailedPayload.model_validate_json(packet.data)
    assert (payload.sessionId, payload.stage) == (metadata.session_id, "providers")
    assert "no-such-speaker" in payload.reason
    assert packet.data == payload.to_bytes()
    assert_from_the_agent(packet)
