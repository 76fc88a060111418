"""Participants as livekit-server counts them, on the real server and on the simulator alike (``livekit``): agents
are not participants in ``num_participants``, and the agent leaving its room ends its job."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from livekit import api

from devstack.livekit_server import RunningLiveKit

from .participants import present
from .raw_worker import raw_worker

DEADLINE_S = 5.0
COUNT_DEADLINE_S = 8.0


async def counted_participants(lk: api.LiveKitAPI, room: str) -> int:
    """``num_participants`` once it counts anyone: livekit-server refreshes the listed room every 5 s
    (``roomUpdateInterval``), the simulator at once."""
    loop = asyncio.get_running_loop()
    end = loop.time() + COUNT_DEADLINE_S
    while True:
        (found,) = (await lk.room.list_rooms(api.ListRoomsRequest(names=[room]))).rooms
        if found.num_participants or loop.time() > end:
            return int(found.num_participants)
        await asyncio.sleep(0.2)


async def recorded_jobs(lk: api.LiveKitAPI, room: str, agent_name: str) -> list[str]:
    """The job ids ListDispatch shows for ``agent_name``'s dispatch, once there are any (bounded wait)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + COUNT_DEADLINE_S
    while True:
        jobs = [
            j.id
            for d in await lk.agent_dispatch.list_dispatch(room)
            if d.agent_name == agent_name
            for j in d.state.jobs
        ]
        if jobs or loop.time() > end:
            return jobs
        await asyncio.sleep(0.2)


def join_token(server: RunningLiveKit, room: str, identity: str, *, kind: str = "") -> str:
    token = api.AccessToken(server.api_key, server.api_secret).with_identity(identity)
    token = token.with_grants(api.VideoGrants(room_join=True, room=room))
    return (token.with_kind(kind) if kind else token).to_jwt()  # type: ignore[arg-type]


@pytest.mark.timeout(30)
async def test_agents_are_listed_but_not_counted(livekit: RunningLiveKit) -> None:
    room = f"count-{uuid.uuid4().hex[:10]}"
    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk:
        await lk.room.create_room(api.CreateRoomRequest(name=room))
        async with (
            present(livekit, join_token(livekit, room, "user-1")),
            present(livekit, join_token(livekit, room, "agent-1", kind="agent")),
        ):
            listed = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
            kinds = sorted(api.ParticipantInfo.Kind.Name(p.kind) for p in listed.participants)
            counted = await counted_participants(lk, room)
        await lk.room.delete_room(api.DeleteRoomRequest(room=room))
    assert kinds == ["AGENT", "STANDARD"]
    assert counted == 1


@pytest.mark.timeout(30)
async def test_the_agent_leaving_its_room_ends_its_job(livekit: RunningLiveKit) -> None:
    agent_name, room = f"leaver-{uuid.uuid4().hex[:8]}", f"left-{uuid.uuid4().hex[:10]}"
    async with (
        raw_worker(livekit, agent_name) as worker,
        api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk,
    ):
        await lk.room.create_room(api.CreateRoomRequest(name=room))  # as the dispatcher: auto_create is off
        await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name=agent_name, room=room))
        offer = await worker.next("availability", DEADLINE_S)
        assert offer is not None
        job_id = offer.availability.job.id
        await worker.answer(job_id, available=True, identity=f"agent-{job_id}")
        assignment = await worker.next("assignment", DEADLINE_S)
        assert assignment is not None
        async with present(livekit, assignment.assignment.token):
            # livekit-server ties the agent to its job once the launch has completed (ListDispatch then lists the
            # job): up to ~5 s after the dispatch while its agent-name cache is cold. An agent gone before that
            # is not known as the job's agent.
            assert await recorded_jobs(lk, room, agent_name) == [job_id]
            assert await worker.next("termination", 0.5) is None  # in the room: the job goes on
        termination = await worker.next("termination", DEADLINE_S)
        await lk.room.delete_room(api.DeleteRoomRequest(room=room))
    assert termination is not None
    assert termination.termination.job_id == job_id
