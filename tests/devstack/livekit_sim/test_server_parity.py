"""Simulator behaviours read from livekit-server v1.13.5 that need a participant in the room (the fidelity suite's
livekit-api calls cannot join one): agents do not count, an agent leaving ends its job, an agent alone does not
make a room "joined"."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from livekit import api
from livekit.protocol import room as room_proto

from devstack.livekit_server import RunningLiveKit
from devstack.livekit_sim import Simulator
from tests.fidelity.raw_worker import RawWorker, raw_worker

from .conftest import API_KEY, API_SECRET, BusClient, participant_token


async def wait_for(predicate: Callable[[], bool], deadline: float = 5.0) -> None:
    """Poll ``predicate`` until true, failing after ``deadline`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.02)


def served(sim: Simulator) -> RunningLiveKit:
    return RunningLiveKit(sim.url, API_KEY, API_SECRET)


async def assigned_agent(worker: RawWorker, lkapi: api.LiveKitAPI, agent_name: str, room: str) -> tuple[str, str]:
    """Dispatch, accept the offer; the job id and the agent's join token."""
    await lkapi.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name=agent_name, room=room))
    offer = await worker.next("availability", 3.0)
    assert offer is not None
    job_id = offer.availability.job.id
    await worker.answer(job_id, available=True, identity=f"agent-{job_id}")
    assignment = await worker.next("assignment", 3.0)
    assert assignment is not None
    return job_id, assignment.assignment.token


async def test_agents_do_not_count_as_participants_and_leaving_ends_the_job(
    sim: Simulator, lkapi: api.LiveKitAPI, room_name: str
) -> None:
    async with raw_worker(served(sim), "parity") as worker:
        job_id, token = await assigned_agent(worker, lkapi, "parity", room_name)
        agent_client = await BusClient.connect(sim, token)
        user = await BusClient.connect(sim, participant_token(room_name, "user-1"))
        try:
            listed = await lkapi.room.list_participants(room_proto.ListParticipantsRequest(room=room_name))
            kinds = sorted(api.ParticipantInfo.Kind.Name(p.kind) for p in listed.participants)
            assert kinds == ["AGENT", "STANDARD"]
            rooms = await lkapi.room.list_rooms(room_proto.ListRoomsRequest(names=[room_name]))
            assert [r.num_participants for r in rooms.rooms] == [1]  # the user only
            await agent_client.close()
            termination = await worker.next("termination", 3.0)
            assert termination is not None
            assert termination.termination.job_id == job_id
        finally:
            await user.close()


@pytest.mark.timeout(20)
async def test_a_room_only_an_agent_joined_waits_for_the_empty_timeout(
    sim: Simulator, lkapi: api.LiveKitAPI, room_name: str
) -> None:
    await lkapi.room.create_room(room_proto.CreateRoomRequest(name=room_name, empty_timeout=3, departure_timeout=1))
    async with raw_worker(served(sim), "parity-alone") as worker:
        _, token = await assigned_agent(worker, lkapi, "parity-alone", room_name)
        agent_client = await BusClient.connect(sim, token)
        target = sim.state.rooms[room_name]
        assert target.first_joined_at is None  # an agent is not a user joining
        await agent_client.close()
        await wait_for(lambda: target.last_left_at is not None)
        assert target.last_left_at is not None
        assert not target.idle_expired(target.last_left_at + 1.5)  # past departure_timeout: not what counts
        assert target.idle_expired(target.info.creation_time + 3)  # empty_timeout from the room's creation
        await wait_for(lambda: room_name not in sim.state.rooms, deadline=6.0)
