"""With ``room.auto_create: false`` (the deploy files, make dev) a join cannot create a room, on the real server and on
the simulator alike (``livekit``): a participant token that outlived its session cannot re-create the room the
dispatcher deleted. Only a token that may create rooms (``roomCreate``) still can; CreateDispatch no longer creates
one either."""

from __future__ import annotations

import uuid

import httpx
import pytest
from livekit import api

from devstack.livekit_server import RunningLiveKit

from .observe import observe
from .participants import is_simulator, present


def _token(server: RunningLiveKit, room: str, *, room_create: bool = False) -> str:
    grants = api.VideoGrants(room_join=True, room=room, room_create=room_create)
    return api.AccessToken(server.api_key, server.api_secret).with_identity("late-user").with_grants(grants).to_jwt()


async def join_refusal(server: RunningLiveKit, token: str) -> tuple[int, str]:
    """The HTTP answer a join gets before any WebSocket: livekit-server's ``/rtc/validate`` (what its SDKs ask when a
    connection fails), the simulator's ``/sim/rtc`` (which refuses before the upgrade)."""
    path = "/sim/rtc" if await is_simulator(server) else "/rtc/validate"
    async with httpx.AsyncClient(timeout=5.0) as client:
        answer = await client.get(f"{server.url}{path}", params={"access_token": token})
    return answer.status_code, answer.text


@pytest.mark.timeout(30)
async def test_a_join_to_a_deleted_room_is_refused_and_creates_nothing(livekit: RunningLiveKit) -> None:
    room = f"ended-{uuid.uuid4().hex[:10]}"
    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk:
        await lk.room.create_room(api.CreateRoomRequest(name=room))
        async with present(livekit, _token(livekit, room)):  # an existing room: joins as ever
            pass
        await lk.room.delete_room(api.DeleteRoomRequest(room=room))
        refused = await join_refusal(livekit, _token(livekit, room))
        listed = await lk.room.list_rooms(api.ListRoomsRequest(names=[room]))
    assert refused == (404, "requested room does not exist")
    assert list(listed.rooms) == []


@pytest.mark.timeout(30)
async def test_only_a_token_that_may_create_rooms_joins_a_missing_room(livekit: RunningLiveKit) -> None:
    room = f"created-{uuid.uuid4().hex[:10]}"
    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk:
        async with present(livekit, _token(livekit, room, room_create=True)):
            (found,) = (await lk.room.list_rooms(api.ListRoomsRequest(names=[room]))).rooms
        await lk.room.delete_room(api.DeleteRoomRequest(room=room))
    assert found.name == room


@pytest.mark.timeout(30)
async def test_create_dispatch_does_not_create_a_missing_room(livekit: RunningLiveKit) -> None:
    room = f"nodispatch-{uuid.uuid4().hex[:10]}"
    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk:
        request = api.CreateAgentDispatchRequest(agent_name=f"nobody-{room}", room=room)
        answer = await observe(lk.agent_dispatch.create_dispatch(request))
        listed = await lk.room.list_rooms(api.ListRoomsRequest(names=[room]))
    assert answer == {
        "error": {
            "code": "unavailable",
            "status": 503,
            "message": "twirp error unknown: no response from servers",
            "meta": {},
        }
    }
    assert list(listed.rooms) == []
