"""A real livekit-agents ``AgentServer`` (thread executor) registered against the simulator."""

from __future__ import annotations

import asyncio
import queue
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import jwt
import pytest
from livekit import api
from livekit.agents import AgentServer, JobContext
from livekit.protocol import agent_dispatch

from devstack.livekit_sim import Simulator
from tests.polling import wait_until

from .agent_server import agent_server_for, registered
from .conftest import API_KEY, API_SECRET


@dataclass
class Seen:
    """What one job's entrypoint saw."""

    metadata: str
    room: str
    token: str
    job_id: str


@dataclass
class RunningServer:
    server: AgentServer
    agent_name: str
    seen: queue.Queue[Seen]

    async def next_job(self, deadline: float = 5.0) -> Seen:
        """The next job the entrypoint ran (it runs on the executor's own thread)."""
        return await asyncio.to_thread(self.seen.get, True, deadline)


@pytest.fixture
async def agent_server(sim: Simulator) -> AsyncIterator[RunningServer]:
    """An AgentServer with a recording entrypoint, registered under a unique agent name."""
    agent_name = f"agent-{uuid.uuid4().hex[:8]}"
    seen: queue.Queue[Seen] = queue.Queue()
    server = agent_server_for(sim.ws_url)

    @server.rtc_session(agent_name=agent_name)
    async def entrypoint(ctx: JobContext) -> None:
        # No ctx.connect(): that needs WebRTC. Record and end the job explicitly.
        seen.put(Seen(ctx.job.metadata, ctx.job.room.name, ctx._info.token, ctx.job.id))
        if ctx.job.metadata != "stay":
            ctx.shutdown(reason="recorded")

    async with registered(server):
        yield RunningServer(server, agent_name, seen)


async def test_dispatch_delivers_a_job_to_the_registered_worker(
    sim: Simulator, lkapi: api.LiveKitAPI, agent_server: RunningServer, room_name: str
) -> None:
    assert [w.agent_name for w in sim.state.workers.values()] == [agent_server.agent_name]
    dispatch = await lkapi.agent_dispatch.create_dispatch(
        agent_dispatch.CreateAgentDispatchRequest(
            agent_name=agent_server.agent_name, room=room_name, metadata='{"sessionId":"s-1"}'
        )
    )
    seen = await agent_server.next_job()
    assert (seen.metadata, seen.room) == ('{"sessionId":"s-1"}', room_name)
    claims = jwt.decode(seen.token, API_SECRET, algorithms=["HS256"], issuer=API_KEY)
    assert claims["kind"] == "agent"
    assert claims["video"]["room"] == room_name
    assert claims["video"]["roomJoin"]
    assert claims["video"]["agent"]
    assert claims["attributes"]["lk.agent_name"] == agent_server.agent_name

    listed = await lkapi.agent_dispatch.get_dispatch(dispatch.id, room_name)
    assert listed is not None
    assert [j.id for j in listed.state.jobs] == [seen.job_id]
    # the job called ctx.shutdown(): the worker reports it ended
    await wait_until(lambda: sim.state.counters["jobs_ended"] == 1, deadline_s=5.0, what="job ended")
    assert sim.state.counters["jobs_assigned"] == 1


async def test_dispatch_without_a_worker_is_dropped(
    sim: Simulator, lkapi: api.LiveKitAPI, agent_server: RunningServer, room_name: str
) -> None:
    dispatch = await lkapi.agent_dispatch.create_dispatch(
        agent_dispatch.CreateAgentDispatchRequest(agent_name="nobody-registered-this", room=room_name)
    )
    await sim.launcher.wait_idle()
    async with aiohttp.ClientSession() as http, http.get(f"{sim.url}/sim/state") as resp:
        state = await resp.json()
    # the new room's default (empty agent name) dispatch and ours: both dropped, both still listed
    assert state["counters"]["jobs_dropped.no_worker"] == 2
    assert state["rooms"][room_name]["dispatches"] == 2
    assert state["rooms"][room_name]["jobs"] == 0
    assert dispatch.id in {d.id for d in await lkapi.agent_dispatch.list_dispatch(room_name)}
    assert agent_server.seen.empty()


async def test_jobs_of_a_disconnected_worker_are_not_reassigned(
    sim: Simulator, lkapi: api.LiveKitAPI, agent_server: RunningServer, room_name: str
) -> None:
    await lkapi.agent_dispatch.create_dispatch(
        agent_dispatch.CreateAgentDispatchRequest(agent_name=agent_server.agent_name, room=room_name, metadata="stay")
    )
    await agent_server.next_job()
    (first_worker,) = sim.state.workers
    async with aiohttp.ClientSession() as http, http.post(f"{sim.url}/sim/workers/disconnect") as resp:
        assert (await resp.json())["disconnected"] == 1
    # the AgentServer reconnects by itself and reports its running job; the server ignores that
    await wait_until(
        lambda: len(sim.state.workers) == 1 and first_worker not in sim.state.workers,
        deadline_s=5.0,
        what="the worker registered again",
    )
    assert sim.state.counters["jobs_lost_with_worker"] == 1
    assert sim.state.counters["jobs_assigned"] == 1
    assert all(not w.jobs for w in sim.state.workers.values())
    assert agent_server.seen.empty()
