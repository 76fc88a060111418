"""How the simulator tells a duplicate agent (two at once in one room) from a replacement (one after the other):
``jobs_duplicated`` / ``jobs_replaced`` at assignment, ``agents_duplicated`` when agent participants overlap."""

from __future__ import annotations

import uuid

from livekit import api
from livekit.protocol import agent

from devstack.livekit_server import RunningLiveKit
from devstack.livekit_sim import Simulator
from tests.fidelity.raw_worker import RawWorker, raw_worker
from tests.polling import wait_until

from .conftest import API_KEY, API_SECRET, BusClient

DEADLINE_S = 3.0


async def assigned_job(worker: RawWorker, identity: str) -> agent.Job:
    """Take the next offer (answering available as ``identity``); the job once the server assigned it."""
    offer = await worker.next("availability", DEADLINE_S)
    assert offer is not None
    await worker.answer(offer.availability.job.id, available=True, identity=identity)
    assignment = await worker.next("assignment", DEADLINE_S)
    assert assignment is not None
    return assignment.assignment.job


def agent_token(room: str, identity: str, agent_name: str) -> str:
    """An agent participant's token, as the server puts it in a job assignment."""
    grants = api.VideoGrants(room_join=True, room=room, agent=True)
    token = api.AccessToken(API_KEY, API_SECRET).with_identity(identity).with_grants(grants).with_kind("agent")
    return token.with_attributes({"lk.agent_name": agent_name}).to_jwt()


async def test_a_second_job_while_the_first_runs_is_a_duplicate(
    sim: Simulator, lkapi: api.LiveKitAPI, room_name: str
) -> None:
    agent_name = f"agent-{uuid.uuid4().hex[:8]}"
    async with raw_worker(RunningLiveKit(sim.url, API_KEY, API_SECRET), agent_name) as worker:
        for identity in ("first", "second"):
            await lkapi.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name=agent_name, room=room_name)
            )
            await assigned_job(worker, identity)
    assert (sim.state.counters["jobs_duplicated"], sim.state.counters["jobs_replaced"]) == (1, 0)


async def test_a_job_after_the_first_ended_is_a_replacement(
    sim: Simulator, lkapi: api.LiveKitAPI, room_name: str
) -> None:
    agent_name = f"agent-{uuid.uuid4().hex[:8]}"
    request = api.CreateAgentDispatchRequest(agent_name=agent_name, room=room_name)
    async with raw_worker(RunningLiveKit(sim.url, API_KEY, API_SECRET), agent_name) as worker:
        first = await lkapi.agent_dispatch.create_dispatch(request)
        await assigned_job(worker, "first")
        # the watchdog's replacement: DeleteDispatch (the server terminates its job), then CreateDispatch
        await lkapi.agent_dispatch.delete_dispatch(first.id, room_name)
        assert await worker.next("termination", DEADLINE_S) is not None
        await lkapi.agent_dispatch.create_dispatch(request)
        second = await assigned_job(worker, "second")
        # the worker reports its job ended; a third job comes after it
        await worker.send(
            agent.WorkerMessage(update_job=agent.UpdateJobStatus(job_id=second.id, status=agent.JS_SUCCESS))
        )
        await wait_until(lambda: sim.state.counters["jobs_ended"] == 1, deadline_s=DEADLINE_S, what="job ended")
        await lkapi.agent_dispatch.create_dispatch(request)
        await assigned_job(worker, "third")
    assert (sim.state.counters["jobs_duplicated"], sim.state.counters["jobs_replaced"]) == (0, 2)


async def test_a_job_after_its_worker_left_is_a_replacement(
    sim: Simulator, lkapi: api.LiveKitAPI, room_name: str
) -> None:
    agent_name = f"agent-{uuid.uuid4().hex[:8]}"
    request = api.CreateAgentDispatchRequest(agent_name=agent_name, room=room_name)
    server = RunningLiveKit(sim.url, API_KEY, API_SECRET)
    async with raw_worker(server, agent_name) as worker:
        await lkapi.agent_dispatch.create_dispatch(request)
        await assigned_job(worker, "first")
    await wait_until(lambda: not sim.state.workers, deadline_s=DEADLINE_S, what="the worker left")
    async with raw_worker(server, agent_name) as worker:  # the server forgot the first job with its worker
        await lkapi.agent_dispatch.create_dispatch(request)
        await assigned_job(worker, "second")
    assert sim.state.counters["jobs_lost_with_worker"] == 1
    assert (sim.state.counters["jobs_duplicated"], sim.state.counters["jobs_replaced"]) == (0, 1)


async def test_two_agents_of_one_name_in_a_room_at_once_are_a_duplicate(sim: Simulator, room_name: str) -> None:
    agent_name = f"agent-{uuid.uuid4().hex[:8]}"
    first = await BusClient.connect(sim, agent_token(room_name, "agent-1", agent_name))
    other = await BusClient.connect(sim, agent_token(room_name, "agent-other", "another-agent"))
    assert sim.state.counters["agents_duplicated"] == 0  # another agent name: not a second of ours
    second = await BusClient.connect(sim, agent_token(room_name, "agent-2", agent_name))
    assert sim.state.counters["agents_duplicated"] == 1
    await first.close()
    await second.close()
    await wait_until(
        lambda: set(sim.state.rooms[room_name].participants) == {"agent-other"},
        deadline_s=DEADLINE_S,
        what="our agents left",
    )
    third = await BusClient.connect(sim, agent_token(room_name, "agent-3", agent_name))  # after them: no overlap
    assert sim.state.counters["agents_duplicated"] == 1
    await third.close()
    await other.close()
