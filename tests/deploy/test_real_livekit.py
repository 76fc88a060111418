"""Against a real LiveKit server: the real agent worker takes an explicit dispatch, and a frontend that joins with
the real livekit rtc SDK receives ``agent.ready`` on the data topic ``agent-status``, byte-exact, from the agent.

The server is the session's ``real_livekit`` (tests/conftest.py): LIVEKIT_URL if given, else ``livekit-server --dev``
found or built by devstack.livekit_server; skipped (failed under CI=true) when there is none.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from livekit import api, rtc

from contracts.datachannel import AgentReadyPayload
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


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("keep_livekit_env")
async def test_a_frontend_receives_agent_ready_from_the_real_worker(
    real_livekit: RunningLiveKit, redis_url: str
) -> None:
    run = uuid.uuid4().hex[:10]
    settings = AgentSettings(
        livekit_url=real_livekit.url,
        livekit_api_key=real_livekit.api_key,
        livekit_api_secret=real_livekit.api_secret,
        livekit_agent_name=f"agentready-real-{run}",
        dev_mode=real_livekit.api_secret == "secret",
        redis_url=redis_url,
        agent_room_backend="livekit",
        agent_job_executor="thread",
        agent_load_threshold=float("inf"),
        agent_http_port=0,
        agent_user_wait_seconds=30.0,
        agent_speak_ms_per_char=1.0,
        api_internal_url="",  # no API here: the greeting comes from the dispatch metadata
    )
    session_id, room_name = str(uuid.uuid4()), f"real-{run}"
    metadata = AgentJobMetadata(
        session_id=session_id,
        flow_id=str(uuid.uuid4()),
        org_id=str(uuid.uuid4()),
        room_name=room_name,
        greeting="Hello from a real LiveKit server!",
        correlation_id=str(uuid.uuid4()),
    )
    token = (
        api.AccessToken(real_livekit.api_key, real_livekit.api_secret)
        .with_identity(f"frontend-{run}")
        .with_grants(api.VideoGrants(room_join=True, room=room_name))
        .to_jwt()
    )
    received: asyncio.Future[rtc.DataPacket] = asyncio.get_running_loop().create_future()

    def on_data(packet: rtc.DataPacket) -> None:
        if packet.topic == TOPIC and not received.done():
            received.set_result(packet)

    async with (
        running_worker(settings),
        api.LiveKitAPI(settings.livekit_http_url, real_livekit.api_key, real_livekit.api_secret) as lk,
    ):
        await lk.room.create_room(api.CreateRoomRequest(name=room_name))
        room = rtc.Room()
        room.on("data_received", on_data)
        await room.connect(settings.livekit_ws_url, token)  # the frontend is in before the agent greets
        try:
            await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(
                    agent_name=settings.livekit_agent_name, room=room_name, metadata=metadata.to_json()
                )
            )
            packet = await asyncio.wait_for(received, timeout=READY_DEADLINE_S)
        finally:
            await room.disconnect()
            await lk.room.delete_room(api.DeleteRoomRequest(room=room_name))
    payload = AgentReadyPayload.model_validate_json(packet.data)
    assert (payload.sessionId, payload.greeting) == (session_id, metadata.greeting)
    assert packet.data == payload.to_bytes()  # byte-exact: the contract's compact serialisation, nothing else
    assert packet.participant is not None
    assert packet.participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
