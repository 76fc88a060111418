"""The real worker (thread executor) against the real LiveKit simulator (in-process) and real Redis.

CreateDispatch through livekit-api -> the job runs the readiness pipeline -> ``agent.joined`` and
``agent.ready`` land on their Redis streams and a user on the room bus gets the exact payload.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from livekit import api
from livekit.rtc._ffi_client import FfiClient
from redis.asyncio import Redis

from contracts.streams import AGENT_FAILED, AGENT_JOB_ENDED, AGENT_JOINED, AGENT_READY, USER_PRESENCE_CHANGED
from devstack.livekit_sim import Simulator, run_simulator
from services.agent.worker import RunningWorker, running_worker
from tests.agent.bus_client import join_bus, participant_token
from tests.agent.stream_events import event_for
from tests.agent.worker_settings import simulator_agent_settings
from tests.polling import wait_until

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    async with run_simulator() as sim:
        yield sim


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
    settings = simulator_agent_settings(
        simulator.ws_url,
        redis_url,
        agent_name,
        agent_user_wait_seconds=5.0,
        agent_user_rejoin_grace_seconds=1.0,
        agent_speak_ms_per_char=1.0,
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
    await wait_until(lambda: not worker.server.active_jobs, deadline_s=10.0, what="agent job ended")


async def test_bad_metadata_with_a_session_id_ends_in_agent_failed(
    simulator: Simulator, worker: RunningWorker, redis: Redis, agent_name: str
) -> None:
    sid, room = f"s-{uuid.uuid4().hex}", f"room-{uuid.uuid4().hex}"
    await dispatch(simulator, agent_name, room, {"sessionId": sid, "greeting": "hi"})
    failed = await event_for(redis, AGENT_FAILED, sid, timeout=20.0)
    assert failed["stage"] == "metadata" and "flowId" in failed["reason"]
    await wait_until(lambda: not worker.server.active_jobs, deadline_s=10.0, what="agent job ended")


async def test_the_job_reports_its_end_when_the_user_leaves_for_good(
    simulator: Simulator, worker: RunningWorker, redis: Redis, agent_name: str
) -> None:
    sid, room = f"s-{uuid.uuid4().hex}", f"room-{uuid.uuid4().hex}"
    metadata = {"sessionId": sid, "flowId": "f", "orgId": "o", "roomName": room, "greeting": "Hi"}
    async with join_bus(simulator.url, participant_token(room, f"user-{sid[-6:]}")) as user:
        await dispatch(simulator, agent_name, room, metadata)
        await user.next_frame("data", timeout=20.0, topic="agent-status")
        seen = await event_for(redis, USER_PRESENCE_CHANGED, sid, timeout=5.0)
        assert seen["present"] is True and seen["source"] == "agent" and seen["room_name"] == room
    ended = await event_for(redis, AGENT_JOB_ENDED, sid, timeout=10.0)  # after the 1 s grace
    assert ended["code"] == "user_left" and "not back within 1 s" in ended["reason"]
    await wait_until(lambda: not worker.server.active_jobs, deadline_s=10.0, what="agent job ended")


async def test_the_job_reports_room_closed_when_the_room_is_deleted(
    simulator: Simulator, worker: RunningWorker, redis: Redis, agent_name: str
) -> None:
    sid, room = f"s-{uuid.uuid4().hex}", f"room-{uuid.uuid4().hex}"
    metadata = {"sessionId": sid, "flowId": "f", "orgId": "o", "roomName": room, "greeting": "Hi"}
    async with join_bus(simulator.url, participant_token(room, f"user-{sid[-6:]}")) as user:
        await dispatch(simulator, agent_name, room, metadata)
        await user.next_frame("data", timeout=20.0, topic="agent-status")
        async with api.LiveKitAPI(simulator.url, "devkey", "secret") as lk:
            await lk.room.delete_room(api.DeleteRoomRequest(room=room))
        ended = await event_for(redis, AGENT_JOB_ENDED, sid, timeout=10.0)
    assert ended["code"] == "room_closed"
    await wait_until(lambda: not worker.server.active_jobs, deadline_s=10.0, what="agent job ended")


async def test_a_job_that_raises_reports_agent_crashed(
    simulator: Simulator, worker: RunningWorker, redis: Redis, agent_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("bug after ready")

    monkeypatch.setattr("services.agent.worker.stay_with_user", broken)
    sid, room = f"s-{uuid.uuid4().hex}", f"room-{uuid.uuid4().hex}"
    metadata = {"sessionId": sid, "flowId": "f", "orgId": "o", "roomName": room, "greeting": "Hi"}
    async with join_bus(simulator.url, participant_token(room, f"user-{sid[-6:]}")) as user:
        await dispatch(simulator, agent_name, room, metadata)
        await user.next_frame("data", timeout=20.0, topic="agent-status")
        ended = await event_for(redis, AGENT_JOB_ENDED, sid, timeout=10.0)
    assert ended["code"] == "agent_crashed" and "RuntimeError" in ended["reason"] and ended["was_ready"] is True


async def test_a_job_shut_down_with_its_worker_reports_agent_job_ended(
    simulator: Simulator, worker: RunningWorker, redis: Redis, agent_name: str
) -> None:
    sid, room = f"s-{uuid.uuid4().hex}", f"room-{uuid.uuid4().hex}"
    metadata = {"sessionId": sid, "flowId": "f", "orgId": "o", "roomName": room, "greeting": "Hi"}
    async with join_bus(simulator.url, participant_token(room, f"user-{sid[-6:]}")) as user:
        await dispatch(simulator, agent_name, room, metadata)
        await user.next_frame("data", timeout=20.0, topic="agent-status")
        await worker.server.aclose()  # the worker stops (a deploy): its running job is shut down
        ended = await event_for(redis, AGENT_JOB_ENDED, sid, timeout=10.0)
    assert ended["code"] == "agent_job_ended" and ended["was_ready"] is True


async def test_the_health_server_listens_on_loopback_only_by_default(worker: RunningWorker) -> None:
    health = worker.server._http_server  # livekit-agents keeps it private; its host is what was bound
    assert health is not None and health.host == "127.0.0.1"  # livekit-agents' own default '' is every interface
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{health.port}/", timeout=5.0)).status_code == 200


async def test_a_thread_executor_worker_in_livekit_rooms_makes_the_rtc_client_before_any_job(
    simulator: Simulator, redis_url: str, agent_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """livekit.rtc creates its FFI client lazily, unlocked: job threads joining their first rooms at once could make
    two, and rooms of the orphaned one never see their ConnectCallback (the FFI panics 15 s later, killing the
    worker). The worker makes it in its own thread first."""
    made_in: list[str] = []

    def record(self: FfiClient) -> None:  # stands in for loading the native library
        made_in.append(threading.current_thread().name)

    for key in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):  # AgentServer.run() exports them
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])
        else:
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(FfiClient, "_instance", None)
    monkeypatch.setattr(FfiClient, "__init__", record)
    settings = simulator_agent_settings(simulator.ws_url, redis_url, agent_name, agent_room_backend="livekit")
    async with running_worker(settings):
        assert made_in == [threading.current_thread().name]
