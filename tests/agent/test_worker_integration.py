"""The real worker (thread executor) against the real LiveKit simulator (in-process) and real Redis.

CreateDispatch through livekit-api -> the job runs the readiness pipeline -> ``agent.joined`` and
``agent.ready`` land on their Redis streams and a user on the room bus gets the exact payload.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import AsyncIterator

import pytest
from livekit import api
from redis.asyncio import Redis

from contracts.streams import AGENT_FAILED, AGENT_JOINED, AGENT_READY
from devstack.livekit_sim import Simulator, run_simulator
from services.agent.settings import AgentSettings
from services.agent.worker import RunningWorker, running_worker
from tests.agent.bus_client import join_bus, participant_token
from tests.agent.waiting import event_for, until

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    async with run_simulator() as sim:
        yield sim


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def agent_name() -> str:
    return f"agent-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def worker(
    simulator: Simulator, redis_url: str, agent_name: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RunningWorker]:
    # AgentServer.run() exports LIVEKIT_URL/API_KEY/API_SECRET into os.environ: restore them afterwards
    for key in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])
        else:
            monkeypatch.delenv(key, raising=False)
    settings = AgentSettings(
        livekit_url=simulator.ws_url,
        livekit_api_key="devkey",
        livekit_api_secret="secret",
        livekit_agent_name=agent_name,
        dev_mode=True,
        redis_url=redis_url,
        agent_room_backend="simulator",
        agent_job_executor="thread",
        agent_num_idle_processes=1,
        agent_load_threshold=float("inf"),  # the test machine's CPU load must not refuse jobs
        agent_max_jobs=20,  # load = jobs / 20: the server offers no job at load >= 0.7, whatever the threshold
        agent_http_port=0,
        agent_user_wait_seconds=5.0,
        agent_speak_ms_per_char=1.0,
        api_internal_url="",  # no API here: the greeting comes from the dispatch metadata
    )
    async with running_worker(settings) as running:
        yield running


async def dispatch(sim: Simulator, agent_name: str, room: str, metadata: dict[str, str]) -> None:
    async with api.LiveKitAPI(sim.url, "devkey", "secret") as lk:
        await lk.room.create_room(api.CreateRoomRequest(name=room))
        await lk.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=agent_name, room=room, metadata=json.dumps(metadata))
        )


async def test_dispatch_makes_the_agent_ready_on_bus_and_streams(
    simulator: Simulator, worker: RunningWorker, redis: Redis, agent_name: str
) -> None:
    sid, room = f"s-{uuid.uuid4().hex}", f"room-{uuid.uuid4().hex}"
    greeting = "Hi, I am your assistant."
    metadata = {
        "sessionId": sid,
        "flowId": "flow-1",
        "orgId": "org-1",
        "roomName": room,
        "greeting": greeting,
        "correlationId": f"corr-{sid}",
    }
    async with join_bus(simulator.url, participant_token(room, f"user-{sid[-6:]}")) as user:
        await dispatch(simulator, agent_name, room, metadata)
        frame = await user.next_frame("data", timeout=20.0, topic="agent-status")
        payload = user.payload(frame)
        ready = json.loads(payload)
        assert list(ready) == ["type", "sessionId", "greeting", "timestamp"]
        assert (ready["type"], ready["sessionId"], ready["greeting"]) == ("agent.ready", sid, greeting)
        assert ISO_UTC.match(ready["timestamp"])
        expected = (
            f'{{"type":"agent.ready","sessionId":"{sid}","greeting":"{greeting}","timestamp":"{ready["timestamp"]}"}}'
        )
        assert payload == expected.encode()
        assert frame["reliable"] is True and frame["sender"].startswith("agent-")

        joined = await event_for(redis, AGENT_JOINED, sid, timeout=5.0)
        ready_event = await event_for(redis, AGENT_READY, sid, timeout=5.0)
        assert joined["room_name"] == room and joined["correlation_id"] == f"corr-{sid}"
        assert ready_event["correlation_id"] == f"corr-{sid}" and ready_event["greeting"] == greeting
        assert {"connect", "wait_for_user", "greeting", "total"} <= set(ready_event["stage_timings_ms"])
        assert ready_event["stage_timings_ms"]["greeting"] >= len(greeting) * 1.0 * 0.9
        assert len(worker.server.active_jobs) == 1
    # the user left: the job ends by itself
    await until(lambda: not worker.server.active_jobs, timeout=10.0)


async def test_bad_metadata_with_a_session_id_ends_in_agent_failed(
    simulator: Simulator, worker: RunningWorker, redis: Redis, agent_name: str
) -> None:
    sid, room = f"s-{uuid.uuid4().hex}", f"room-{uuid.uuid4().hex}"
    await dispatch(simulator, agent_name, room, {"sessionId": sid, "greeting": "hi"})
    failed = await event_for(redis, AGENT_FAILED, sid, timeout=20.0)
    assert failed["stage"] == "metadata" and "flowId" in failed["reason"]
    await until(lambda: not worker.server.active_jobs, timeout=10.0)
