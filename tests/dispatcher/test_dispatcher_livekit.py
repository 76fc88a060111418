"""The dispatcher app over real Redis, talking to the LiveKit simulator with the real livekit-api client:
idempotent dispatch, bounded retries, permanent errors, clean-up on a terminal status."""

from __future__ import annotations

from typing import TypeVar

import aiohttp
import pytest
from livekit import api

from contracts.events import Event, SessionDispatched, SessionDispatchFailed, SessionStatusChanged
from contracts.streams import SESSION_DISPATCH_FAILED, SESSION_DISPATCHED, SESSION_REQUESTED, SESSION_STATUS_CHANGED
from devstack.livekit_sim import Simulator
from devstack.livekit_sim.faults import Fault
from services.dispatcher.dispatch_dedup import ensure_single_dispatch
from services.dispatcher.livekit_rooms import LiveKitRoomsClient
from tests.polling import wait_until

from .conftest import (
    Publish,
    dispatcher_settings,
    listed_dispatches,
    our_dispatches,
    running_dispatcher,
    wait_consumed,
    wait_for_events,
)
from .fakes import session_request


def _of(session_id: str, count: int = 1) -> object:
    return lambda events: len([e for e in events if e.session_id == session_id]) >= count


E = TypeVar("E", bound=Event)


async def _the_one(redis_url: str, stream: str, model: type[E], session_id: str) -> E:
    """The one event of ``session_id`` on ``stream``, once it is there."""
    [event] = [
        e for e in await wait_for_events(redis_url, stream, model, _of(session_id)) if e.session_id == session_id
    ]
    return event


async def test_duplicate_delivery_creates_one_dispatch(
    sim: Simulator, running: Publish, dispatcher_redis_url: str, agent_name: str
) -> None:
    request = session_request()
    await running(request)
    await running(request)  # duplicate delivery
    # Both deliveries are handled concurrently; both answer with the same, single dispatch.
    events = await wait_for_events(
        dispatcher_redis_url, SESSION_DISPATCHED, SessionDispatched, _of(request.session_id, 2)
    )
    ids = {e.dispatch_id for e in events if e.session_id == request.session_id}
    dispatches = await listed_dispatches(sim, request.room_name, agent_name)
    # one made with the room (CreateRoom does not name it), the other delivery found it by listing
    assert len(dispatches) == 1 and ids == {"", dispatches[0].id}
    assert sim.state.counters["twirp_requests.CreateDispatch"] == 0
    assert '"greeting":"Hello"' in dispatches[0].metadata
    room = sim.state.rooms[request.room_name].info
    assert (room.empty_timeout, room.departure_timeout, room.max_participants) == (300, 20, 10)
    assert request.session_id in room.metadata
    # The agent's credential goes to the agent's dispatch only, never to the room every participant can read.
    assert "agent-credential-secret" in dispatches[0].metadata
    assert "agent-credential-secret" not in room.metadata


async def test_unavailable_twice_then_success_gives_one_dispatch(
    sim: Simulator, running: Publish, dispatcher_redis_url: str, agent_name: str
) -> None:
    sim.faults.set(Fault(route="CreateRoom", status=503, code="unavailable", count=2))
    request = session_request()
    await running(request)
    await wait_for_events(dispatcher_redis_url, SESSION_DISPATCHED, SessionDispatched, _of(request.session_id))
    assert len(our_dispatches(sim, request.room_name, agent_name)) == 1
    # the third try made the room without the agent (a retry lists first), then the dispatch
    assert sim.state.counters["twirp_requests.CreateRoom"] == 3
    assert sim.state.counters["twirp_requests.CreateDispatch"] == 1


async def test_a_room_made_with_its_agent_whose_answer_was_lost_gets_no_second_agent(
    sim: Simulator, running: Publish, dispatcher_redis_url: str, agent_name: str
) -> None:
    sim.faults.set(Fault(route="CreateRoom", status=503, code="unavailable", count=1, apply=True))
    request = session_request()
    await running(request)
    dispatched = await _the_one(dispatcher_redis_url, SESSION_DISPATCHED, SessionDispatched, request.session_id)
    assert our_dispatches(sim, request.room_name, agent_name) == [dispatched.dispatch_id]  # listed, found
    assert sim.state.counters["twirp_requests.CreateDispatch"] == 0


async def test_without_dispatch_with_room_the_room_and_the_dispatch_are_two_calls(
    sim: Simulator, dispatcher_redis_url: str, agent_name: str
) -> None:
    """``DISPATCH_WITH_ROOM=false`` (LiveKit with room.auto_create on): CreateRoom, then CreateDispatch."""
    settings = dispatcher_settings(sim, dispatcher_redis_url, agent_name, dispatch_with_room=False)
    async with running_dispatcher(settings) as publish:
        request = session_request()
        await publish(request)
        dispatched = await _the_one(dispatcher_redis_url, SESSION_DISPATCHED, SessionDispatched, request.session_id)
    assert our_dispatches(sim, request.room_name, agent_name) == [dispatched.dispatch_id]
    assert [d.agent_name for d in sim.state.rooms[request.room_name].dispatches.values()] == ["", agent_name]
    assert (sim.state.counters["twirp_requests.CreateRoom"], sim.state.counters["twirp_requests.CreateDispatch"]) == (
        1,
        1,
    )


@pytest.mark.parametrize(
    ("status", "code", "msg"),
    [(401, "unauthenticated", "permissions denied"), (403, "permission_denied", "no roomCreate grant")],
    ids=["401-as-the-server-answers", "403"],
)
async def test_refused_permission_fails_at_once_with_a_reason(
    sim: Simulator, running: Publish, dispatcher_redis_url: str, status: int, code: str, msg: str
) -> None:
    sim.faults.set(Fault(route="CreateRoom", status=status, code=code, msg=msg))
    request = session_request()
    await running(request)
    failed = await _the_one(dispatcher_redis_url, SESSION_DISPATCH_FAILED, SessionDispatchFailed, request.session_id)
    assert str(status) in failed.reason and msg in failed.reason and "LIVEKIT_API_KEY" in failed.reason
    assert sim.state.counters["twirp_requests.CreateRoom"] == 1  # no retry
    assert sim.state.counters["twirp_requests.CreateDispatch"] == 0


@pytest.mark.parametrize("to_status", ["ended", "expired", "failed"])
async def test_terminal_status_deletes_dispatch_and_room(
    sim: Simulator, running: Publish, dispatcher_redis_url: str, agent_name: str, to_status: str
) -> None:
    request = session_request()
    await running(request)
    await wait_for_events(dispatcher_redis_url, SESSION_DISPATCHED, SessionDispatched, _of(request.session_id))
    assert request.room_name in sim.state.rooms
    await running(
        SessionStatusChanged(
            session_id=request.session_id, from_status="dispatched", to_status=to_status, reason="test"
        )
    )
    await wait_until(lambda: request.room_name not in sim.state.rooms, deadline_s=10.0, what="room deleted")
    assert sim.state.counters["twirp_requests.DeleteDispatch"] == 1
    assert sim.state.counters["twirp_requests.DeleteRoom"] == 1
    # A redelivered request for the session that is over creates nothing again.
    await running(request)
    await running(SessionStatusChanged(session_id=request.session_id, from_status=None, to_status=to_status))
    await wait_consumed(dispatcher_redis_url, SESSION_REQUESTED)
    await wait_until(
        lambda: sim.state.counters["twirp_requests.ListRooms"] == 2, deadline_s=10.0, what="second clean-up"
    )
    assert request.room_name not in sim.state.rooms
    assert sim.state.counters["twirp_requests.CreateRoom"] == 1


async def test_a_joined_session_is_cleaned_up_with_one_call(
    sim: Simulator, running: Publish, dispatcher_redis_url: str, agent_name: str
) -> None:
    """Its one dispatch's agent joined: DeleteRoom alone removes the room and its dispatch (no ListRooms,
    ListDispatch, DeleteDispatch); a room already gone is success."""
    request, gone = session_request(), session_request()
    for r in (request, gone):
        await running(r)
    for r in (request, gone):
        await wait_for_events(dispatcher_redis_url, SESSION_DISPATCHED, SessionDispatched, _of(r.session_id))
        await running(SessionStatusChanged(session_id=r.session_id, from_status="dispatched", to_status="agent_joined"))
    async with api.LiveKitAPI(sim.url, "devkey", "secret") as lk:
        await lk.room.delete_room(api.DeleteRoomRequest(room=gone.room_name))  # LiveKit closed it meanwhile
    before = dict(sim.state.counters)
    for r in (request, gone):
        await running(SessionStatusChanged(session_id=r.session_id, from_status="agent_joined", to_status="ended"))
    await wait_consumed(dispatcher_redis_url, SESSION_STATUS_CHANGED)
    await wait_until(lambda: request.room_name not in sim.state.rooms, deadline_s=10.0, what="room deleted")
    calls = {k: v - before.get(k, 0) for k, v in sim.state.counters.items() if k.startswith("twirp_requests.")}
    assert {k: v for k, v in calls.items() if v} == {"twirp_requests.DeleteRoom": 2}
    assert our_dispatches(sim, request.room_name, agent_name) == []  # went with the room


async def test_removing_a_room_that_is_gone_is_success(sim: Simulator, agent_name: str) -> None:
    """ListDispatch on a missing room answers ``unavailable`` (a transient error): look the room up first."""
    async with api.LiveKitAPI(sim.url, "devkey", "secret", timeout=aiohttp.ClientTimeout(total=5)) as lk:
        rooms = LiveKitRoomsClient(lambda: lk, agent_name, api.CreateRoomRequest(), max_in_flight=4)
        await rooms.remove_room("never-created")
        await rooms.ensure_room("short-lived", "{}")
        dispatch_id = await ensure_single_dispatch(rooms, "short-lived", "{}")
        assert our_dispatches(sim, "short-lived", agent_name) == [dispatch_id]
        await rooms.remove_room("short-lived")
        await rooms.remove_room("short-lived")
    assert "short-lived" not in sim.state.rooms
    assert sim.state.counters["twirp_requests.ListDispatch"] == 2  # one per room that existed
