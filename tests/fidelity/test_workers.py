"""Job offers as livekit-server makes them, checked on the real server and on the simulator alike (``livekit``)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from livekit import api

from devstack.livekit_server import RunningLiveKit

from .raw_worker import raw_worker

OFFER_DEADLINE_S = 3.0
# The real server terminates a deleted dispatch's job once the dispatch's launch has completed, and a launch waits
# for its agent-name discovery (CheckEnabled: up to 5 s while the server's cache is cold).
TERMINATION_DEADLINE_S = 8.0


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
