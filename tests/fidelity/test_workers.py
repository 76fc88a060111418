"""Job offers as livekit-server makes them, checked on the real server and on the simulator alike (``livekit``)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from livekit import api
from livekit.protocol import agent

from devstack.livekit_server import RunningLiveKit
from services.dispatcher.livekit_rooms import LiveKitRoomsClient
from tests.polling import wait_until

from .raw_worker import raw_worker

OFFER_DEADLINE_S = 3.0
# The real server terminates a deleted dispatch's job once the dispatch's launch has completed, and a launch waits
# for its agent-name discovery (CheckEnabled: up to 5 s while the server's cache is cold).
TERMINATION_DEADLINE_S = 8.0
# The real server lists a job in its dispatch (ListDispatch) once the dispatch's launch has completed: the same wait.
LAUNCH_DEADLINE_S = TERMINATION_DEADLINE_S


def names() -> tuple[str, str]:
    run = uuid.uuid4().hex[:10]
    return f"worker-{run}", f"room-{run}"


@pytest.mark.timeout(30)
async def test_a_worker_above_the_target_load_gets_no_offer(livekit: RunningLiveKit) -> None:
    agent_name, room = names()
    async with (
        raw_worker(livekit, agent_name, load=0.8) as busy,
        api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk,
    ):
        await lk.room.create_room(api.CreateRoomRequest(name=room))  # as the dispatcher: auto_create is off
        await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name=agent_name, room=room))
        assert await busy.next("availability", OFFER_DEADLINE_S) is None
        await busy.set_load(0.5)
        await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name=agent_name, room=room))
        assert await busy.next("availability", OFFER_DEADLINE_S) is not None
        await lk.room.delete_room(api.DeleteRoomRequest(room=room))


@pytest.mark.timeout(30)
async def test_an_unanswered_offer_expires_after_about_3_s(livekit: RunningLiveKit) -> None:
    agent_name, room = names()
    async with (
        raw_worker(livekit, agent_name) as worker,
        api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk,
    ):
        await lk.room.create_room(api.CreateRoomRequest(name=room))  # as the dispatcher: auto_create is off
        await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name=agent_name, room=room))
        offer = await worker.next("availability", OFFER_DEADLINE_S)
        assert offer is not None
        offered_at = time.monotonic()
        await asyncio.sleep(3.5)  # the scenario itself: an answer later than the server's 3 s
        await worker.answer(offer.availability.job.id, available=True, identity="late-agent")
        assert await worker.next("assignment", 1.5) is None
        assert time.monotonic() - offered_at < 6.0
        listed = await lk.agent_dispatch.list_dispatch(room)
        assert [len(d.state.jobs) for d in listed if d.agent_name == agent_name] == [0]
        await lk.room.delete_room(api.DeleteRoomRequest(room=room))


@pytest.mark.timeout(30)
async def test_delete_dispatch_answers_at_once_and_terminates_a_job_still_being_offered(
    livekit: RunningLiveKit,
) -> None:
    agent_name, room = names()
    async with (
        raw_worker(livekit, agent_name) as worker,
        api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk,
    ):
        await lk.room.create_room(api.CreateRoomRequest(name=room))  # as the dispatcher: auto_create is off
        dispatch = await lk.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=agent_name, room=room)
        )
        offer = await worker.next("availability", OFFER_DEADLINE_S)
        assert offer is not None
        started = time.monotonic()
        await lk.agent_dispatch.delete_dispatch(dispatch.id, room)
        assert time.monotonic() - started < 1.0  # it did not wait for the offer to settle
        assert [d.id for d in await lk.agent_dispatch.list_dispatch(room) if d.agent_name == agent_name] == []
        job_id = offer.availability.job.id
        await worker.answer(job_id, available=True, identity=f"agent-{job_id}")
        assignment = await worker.next("assignment", OFFER_DEADLINE_S)
        assert assignment is not None
        termination = await worker.next("termination", TERMINATION_DEADLINE_S)
        assert termination is not None
        assert termination.termination.job_id == job_id
        await lk.room.delete_room(api.DeleteRoomRequest(room=room))


@pytest.mark.timeout(30)
async def test_a_room_made_with_its_agent_dispatches_it_once_and_the_dispatcher_finds_its_job(
    livekit: RunningLiveKit,
) -> None:
    """The dispatcher's first try: CreateRoom with the agent in it. The room gets that dispatch (and not the empty-named
    one a room made without agents gets), a second CreateRoom adds none, and the dispatcher's job look, which does not
    know the dispatch's id (CreateRoom's answer does not name it), finds the job the worker took."""
    agent_name, room = names()
    with_agent = api.CreateRoomRequest(name=room, agents=[api.RoomAgentDispatch(agent_name=agent_name, metadata="m")])
    async with (
        raw_worker(livekit, agent_name) as worker,
        api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk,
    ):
        rooms = LiveKitRoomsClient(lambda: lk, agent_name, api.CreateRoomRequest(), max_in_flight=4)
        await lk.room.create_room(with_agent)
        offer = await worker.next("availability", OFFER_DEADLINE_S)
        assert offer is not None
        job = offer.availability.job
        assert (job.agent_name, job.metadata, job.type) == (agent_name, "m", agent.JobType.JT_ROOM)
        await lk.room.create_room(with_agent)  # a repeated call, as a redelivery's would be
        listed = await lk.agent_dispatch.list_dispatch(room)
        assert [(d.id, d.agent_name) for d in listed] == [(job.dispatch_id, agent_name)]
        assert (await rooms.job_state(room, "")).started_at is None  # offered, not taken yet
        await worker.answer(job.id, available=True, identity=f"agent-{job.id}")
        assert await worker.next("assignment", OFFER_DEADLINE_S) is not None

        async def taken() -> bool:
            return (await rooms.job_state(room, "")).started_at is not None

        await wait_until(taken, deadline_s=LAUNCH_DEADLINE_S, what="the job look finds the job the worker took")
        assert (await rooms.job_state(room, "")).ours == (job.dispatch_id,)
        assert await worker.next("availability", 0.5) is None  # the second CreateRoom offered nothing
        await lk.room.delete_room(api.DeleteRoomRequest(room=room))
