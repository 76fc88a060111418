"""Against a real LiveKit server: the real agent worker takes an explicit dispatch, and a frontend that joins with
the real livekit rtc SDK receives ``agent.ready`` on the data topic ``agent-status``.

The server: LIVEKIT_URL with LIVEKIT_API_KEY / LIVEKIT_API_SECRET if set (e.g. the one of deploy/docker-compose.yml),
else livekit/livekit-server --dev in a container when a Docker engine answers; otherwise it is skipped, saying why.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from livekit import api, rtc

from contracts.job import AgentJobMetadata
from devstack.docker_engine import docker_engine_available
from services.agent.settings import AgentSettings
from services.agent.worker import running_worker

LIVEKIT_IMAGE = "livekit/livekit-server:latest"
TOPIC = "agent-status"
READY_DEADLINE_S = 60.0


@dataclass(frozen=True)
class LiveKitServer:
    """Where a real server answers, and its credentials."""

    url: str
    api_key: str
    api_secret: str


def _wait_until_up(url: str, deadline_s: float) -> None:
    """Poll the server's HTTP root until it answers 200, within ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"LiveKit server at {url} did not answer within {deadline_s} s")
        time.sleep(0.5)  # polling with a deadline


# Read at collection time, before any test runs: livekit-agents' AgentServer.run() (used in-process by
# other tests) writes LIVEKIT_URL/API_KEY/API_SECRET into os.environ, which must not look like a real server.
_GIVEN = {k: os.environ.get(k) for k in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")}


@pytest.fixture(scope="module")
def livekit_server() -> Iterator[LiveKitServer]:
    url = _GIVEN["LIVEKIT_URL"]
    if url:
        key, secret = _GIVEN["LIVEKIT_API_KEY"], _GIVEN["LIVEKIT_API_SECRET"]
        if not key or not secret:
            pytest.skip("LIVEKIT_URL is set but LIVEKIT_API_KEY / LIVEKIT_API_SECRET are not")
        yield LiveKitServer(url, key, secret)
        return
    if not docker_engine_available():
        pytest.skip(
            "no real LiveKit server: set LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET "
            "(e.g. docker compose -f deploy/docker-compose.yml up livekit), or run where a Docker engine answers"
        )
    from testcontainers.core.container import DockerContainer  # lazily: dev-only, and needs the engine

    # Media goes to the container's own address (its ICE host candidates), which a Linux host reaches directly.
    with DockerContainer(LIVEKIT_IMAGE).with_command("--dev --bind 0.0.0.0").with_exposed_ports(7880) as container:
        http_url = f"http://{container.get_container_host_ip()}:{container.get_exposed_port(7880)}"
        _wait_until_up(http_url, deadline_s=60.0)
        yield LiveKitServer(http_url, "devkey", "secret")


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
    livekit_server: LiveKitServer, redis_url: str
) -> None:
    run = uuid.uuid4().hex[:10]
    settings = AgentSettings(
        livekit_url=livekit_server.url,
        livekit_api_key=livekit_server.api_key,
        livekit_api_secret=livekit_server.api_secret,
        livekit_agent_name=f"agentready-real-{run}",
        dev_mode=livekit_server.api_secret == "secret",
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
        api.AccessToken(livekit_server.api_key, livekit_server.api_secret)
        .with_identity(f"frontend-{run}")
        .with_grants(api.VideoGrants(room_join=True, room=room_name))
        .to_jwt()
    )
    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def on_data(packet: rtc.DataPacket) -> None:
        if packet.topic == TOPIC and not received.done():
            received.set_result(packet.data)

    async with (
        running_worker(settings),
        api.LiveKitAPI(settings.livekit_http_url, livekit_server.api_key, livekit_server.api_secret) as lk,
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
            payload = json.loads(await asyncio.wait_for(received, timeout=READY_DEADLINE_S))
        finally:
            await room.disconnect()
            await lk.room.delete_room(api.DeleteRoomRequest(room=room_name))
    assert payload["type"] == "agent.ready"
    assert payload["sessionId"] == session_id
    assert payload["greeting"] == metadata.greeting
    assert set(payload) >= {"type", "sessionId", "greeting", "timestamp"}
