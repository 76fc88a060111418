"""Participants as livekit-server counts them, on the real server and on the simulator alike (``livekit``): agents
are not participants in ``num_participants``, and the agent leaving its room ends its job."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from livekit import api

from devstack.livekit_server import RunningLiveKit
from services.api.livekit_room_reader import LiveKitRoomReader
from services.api.presence import check_presence

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


def join_token(
    server: RunningLiveKit, room: str, identity: str, *, kind: str = "", attributes: dict[str, str] | None = None
) -> str:
    token = api.AccessToken(server.api_key, server.api_secret).with_identity(identity).with_attributes(attributes or {})
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


@pytest.mark.timeout(30)
async def test_list_participants_answers_what_the_presence_check_reads(livekit: RunningLiveKit) -> None:
    """The operators' presence check (ListParticipants, then ListRooms for an empty answer) reads the same fields
    from both: the agent's kind, its ``lk.agent.state`` attribute, when it joined; a missing room lists nobody."""
    room = f"presence-{uuid.uuid4().hex[:10]}"
    reader = LiveKitRoomReader(livekit.url, livekit.api_key, livekit.api_secret, timeout_s=5.0)
    try:
        missing = await check_presence(f"absent-{uuid.uuid4().hex[:10]}", reader)
        async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk:
            await lk.room.create_room(api.CreateRoomRequest(name=room))
            empty = await check_presence(room, reader)
            before = time.time()
            agent = join_token(livekit, room, "agent-p", kind="agent", attributes={"lk.agent.state": "listening"})
            async with present(livekit, join_token(livekit, room, "user-p")), present(livekit, agent):
                after = time.time()
                found = await check_presence(room, reader)
                listed = (await lk.room.list_participants(api.ListParticipantsRequest(room=room))).participants
            await lk.room.delete_room(api.DeleteRoomRequest(room=room))
    finally:
        await reader.aclose()
    assert (missing.room_exists, missing.in_room, missing.participants) == (False, False, 0)
    assert (empty.room_exists, empty.in_room, empty.participants) == (True, False, 0)
    assert (found.in_room, found.agent_identity, found.state, found.participants, found.agents) == (
        True, "agent-p", "listening", 2, 1,
    )  # fmt: skip
    assert found.joined_at is not None and before - 1 <= found.joined_at.timestamp() <= after + 1
    for p in listed:  # joined_at (s) and joined_at_ms agree on both servers
        assert p.joined_at_ms // 1000 == p.joined_at
