"""Against a real LiveKit server and the real worker: the presence check sees the agent in its room with LiveKit's
``lk.agent.state``, and the agent's job span joins the trace its dispatch's metadata carried."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from contracts.datachannel import AgentReadyPayload
from devstack.livekit_server import RunningLiveKit
from services.api.livekit_room_reader import LiveKitRoomReader
from services.api.presence import check_presence
from tests.deploy.test_real_livekit import agent_settings, agent_status_after_dispatch, job_metadata, keep_livekit_env
from tests.polling import wait_until
from tests.tracing.conftest import spans

__all__ = ["keep_livekit_env", "spans"]  # the fixtures, used below by name

READY_DEADLINE_S = 60.0


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("keep_livekit_env")
async def test_presence_and_the_trace_of_a_real_agent(
    real_livekit: RunningLiveKit, redis_url: str, spans: InMemorySpanExporter
) -> None:
    settings = agent_settings(real_livekit, redis_url)
    trace_id, parent_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    metadata = job_metadata(f"real-presence-{uuid.uuid4().hex[:10]}").model_copy(
        update={"traceparent": f"00-{trace_id}-{parent_span}-01"}
    )
    reader = LiveKitRoomReader(settings.livekit_http_url, settings.livekit_api_key, settings.livekit_api_secret, 5.0)
    try:
        async with agent_status_after_dispatch(settings, metadata) as received:
            packet = await asyncio.wait_for(received, timeout=READY_DEADLINE_S)
            found = await check_presence(metadata.room_name, reader)
        gone = await check_presence(metadata.room_name, reader)  # the room was deleted
    finally:
        await reader.aclose()
    assert AgentReadyPayload.model_validate_json(packet.data).sessionId == metadata.session_id
    assert (found.room_exists, found.in_room, found.participants, found.agents) == (True, True, 2, 1)
    assert found.agent_identity and found.joined_at is not None
    assert found.state in {"listening", "thinking", "speaking"}, found.state  # LiveKit's own, past initializing
    assert (gone.room_exists, gone.in_room) == (False, False)
    print(f"presence: {found.agent_identity} {found.state} since {found.joined_at.isoformat()}")

    await wait_until(
        lambda: any(s.name == "agent.job" for s in spans.get_finished_spans()),
        deadline_s=20.0,
        what="the job ended and its span with it",
    )
    (job,) = [s for s in spans.get_finished_spans() if s.name == "agent.job"]
    assert f"{job.context.trace_id:032x}" == trace_id
    assert job.parent is not None and f"{job.parent.span_id:016x}" == parent_span
    stages = {s.name for s in spans.get_finished_spans() if s.parent and s.parent.span_id == job.context.span_id}
    assert {"agent.stage connect", "agent.stage greeting"} <= stages, stages
