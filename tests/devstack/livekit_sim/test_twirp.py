"""The real livekit-api client against the simulator's Twirp RoomService and AgentDispatchService."""

from __future__ import annotations

import datetime

import aiohttp
import pytest
from livekit import api
from livekit.protocol import agent_dispatch, room

from devstack.livekit_sim import Simulator

from .conftest import API_KEY, BusClient, participant_token


async def test_create_room_twice_gives_one_room(lkapi: api.LiveKitAPI, room_name: str) -> None:
    first = await lkapi.room.create_room(room.CreateRoomRequest(name=room_name, metadata="m1"))
    second = await lkapi.room.create_room(room.CreateRoomRequest(name=room_name))
    assert first.sid == second.sid
    assert second.metadata == "m1"
    listed = await lkapi.room.list_rooms(room.ListRoomsRequest(names=[room_name]))
    assert [r.name for r in listed.rooms] == [room_name]


async def test_create_dispatch_is_not_deduplicated(lkapi: api.LiveKitAPI, room_name: str) -> None:
    await lkapi.room.create_room(room.CreateRoomRequest(name=room_name))
    req = agent_dispatch.CreateAgentDispatchRequest(agent_name="agentready", room=room_name, metadata="{}")
    one = await lkapi.agent_dispatch.create_dispatch(req)
    two = await lkapi.agent_dispatch.create_dispatch(req)
    assert one.id != two.id
    listed = await lkapi.agent_dispatch.list_dispatch(room_name)
    named = [d for d in listed if d.agent_name == "agentready"]
    assert {d.id for d in named} == {one.id, two.id}
    # a new room always carries the server's default dispatch with an empty agent name
    assert [d.agent_name for d in listed if d.id not in {one.id, two.id}] == [""]
    assert (await lkapi.agent_dispatch.get_dispatch(one.id, room_name)) == listed[[d.id for d in listed].index(one.id)]
    deleted = await lkapi.agent_dispatch.delete_dispatch(one.id, room_name)
    assert deleted.id == one.id
    assert one.id not in {d.id for d in await lkapi.agent_dispatch.list_dispatch(room_name)}


async def test_create_dispatch_creates_the_room(lkapi: api.LiveKitAPI, room_name: str) -> None:
    await lkapi.agent_dispatch.create_dispatch(
        agent_dispatch.CreateAgentDispatchRequest(agent_name="x", room=room_name)
    )
    listed = await lkapi.room.list_rooms(room.ListRoomsRequest(names=[room_name]))
    assert len(listed.rooms) == 1


async def test_wrong_secret_is_a_401(sim: Simulator, room_name: str) -> None:
    async with api.LiveKitAPI(sim.url, API_KEY, "not-the-secret") as client:
        with pytest.raises(api.TwirpError) as caught:
            await client.room.create_room(room.CreateRoomRequest(name=room_name))
    # the server's auth middleware answers in plain text, so the client cannot read a code
    assert caught.value.status == 401
    assert caught.value.code == "unknown"


async def test_unknown_key_and_expired_token_are_401(sim: Simulator, room_name: str) -> None:
    expiring = api.AccessToken(API_KEY, "secret").with_ttl(datetime.timedelta(minutes=-5))
    expired = expiring.with_grants(api.VideoGrants(room_create=True)).to_jwt()
    unknown = api.AccessToken("other-key", "secret").with_grants(api.VideoGrants(room_create=True)).to_jwt()
    for token in (expired, unknown):
        async with api.LiveKitAPI.with_token(token, sim.url) as client:
            with pytest.raises(api.TwirpError) as caught:
                await client.room.create_room(room.CreateRoomRequest(name=room_name))
        assert caught.value.status == 401


async def test_missing_grant_is_refused(sim: Simulator, room_name: str) -> None:
    join_only = participant_token(room_name, "someone")
    async with api.LiveKitAPI.with_token(join_only, sim.url) as client:
        with pytest.raises(api.TwirpError) as caught:
            await client.room.create_room(room.CreateRoomRequest(name=room_name))
        assert (caught.value.code, caught.value.status) == ("unauthenticated", 401)
        assert caught.value.message == "permissions denied"
    other_room = api.AccessToken(API_KEY, "secret").with_grants(api.VideoGrants(room_admin=True, room="elsewhere"))
    async with api.LiveKitAPI.with_token(other_room.to_jwt(), sim.url) as client:
        with pytest.raises(api.TwirpError) as caught:
            await client.agent_dispatch.list_dispatch(room_name)
        assert caught.value.code == "unauthenticated"


async def test_fault_injection_fails_twice_then_succeeds(sim: Simulator, lkapi: api.LiveKitAPI, room_name: str) -> None:
    async with aiohttp.ClientSession() as http:
        fault = {"route": "CreateRoom", "latency_ms": 20, "status": 503, "code": "unavailable", "count": 2}
        async with http.post(f"{sim.url}/sim/faults", json=fault) as resp:
            assert resp.status == 200
        for _ in range(2):
            with pytest.raises(api.TwirpError) as caught:
                await lkapi.room.create_room(room.CreateRoomRequest(name=room_name))
            assert (caught.value.code, caught.value.status) == ("unavailable", 503)
        created = await lkapi.room.create_room(room.CreateRoomRequest(name=room_name))
        assert created.name == room_name
        async with http.delete(f"{sim.url}/sim/faults") as resp:
            assert resp.status == 200
        async with http.get(f"{sim.url}/sim/state") as resp:
            assert (await resp.json())["faults"] == []


async def test_fault_that_applies_then_fails_duplicates_a_retried_dispatch(
    sim: Simulator, lkapi: api.LiveKitAPI, room_name: str
) -> None:
    async with aiohttp.ClientSession() as http:
        fault = {"route": "CreateDispatch", "status": 503, "count": 1, "apply": True}
        async with http.post(f"{sim.url}/sim/faults", json=fault) as resp:
            assert resp.status == 200
    req = agent_dispatch.CreateAgentDispatchRequest(agent_name="agentready", room=room_name)
    with pytest.raises(api.TwirpError):
        await lkapi.agent_dispatch.create_dispatch(req)
    await lkapi.agent_dispatch.create_dispatch(req)
    listed = await lkapi.agent_dispatch.list_dispatch(room_name)
    assert len([d for d in listed if d.agent_name == "agentready"]) == 2


async def test_list_and_remove_participants(sim: Simulator, lkapi: api.LiveKitAPI, room_name: str) -> None:
    user = await BusClient.connect(sim, participant_token(room_name, "user-1"))
    bot = await BusClient.connect(sim, participant_token(room_name, "bot-1", kind="agent"))
    try:
        listed = await lkapi.room.list_participants(room.ListParticipantsRequest(room=room_name))
        kinds = {p.identity: p.kind for p in listed.participants}
        assert kinds == {"user-1": api.ParticipantInfo.STANDARD, "bot-1": api.ParticipantInfo.AGENT}
        await lkapi.room.remove_participant(room.RoomParticipantIdentity(room=room_name, identity="user-1"))
        assert (await user.next_frame("disconnected"))["reason"] == "removed"
        assert (await bot.next_frame("participant_left"))["identity"] == "user-1"
        listed = await lkapi.room.list_participants(room.ListParticipantsRequest(room=room_name))
        assert [p.identity for p in listed.participants] == ["bot-1"]
        with pytest.raises(api.TwirpError) as caught:
            await lkapi.room.remove_participant(room.RoomParticipantIdentity(room=room_name, identity="user-1"))
        assert caught.value.code == "not_found"
    finally:
        await user.close()
        await bot.close()


async def test_delete_room(sim: Simulator, lkapi: api.LiveKitAPI, room_name: str) -> None:
    with pytest.raises(api.TwirpError) as caught:
        await lkapi.room.delete_room(room.DeleteRoomRequest(room=room_name))
    assert (caught.value.code, caught.value.status) == ("not_found", 404)
    user = await BusClient.connect(sim, participant_token(room_name, "user-1"))
    try:
        await lkapi.room.delete_room(room.DeleteRoomRequest(room=room_name))
        assert (await user.next_frame("disconnected"))["reason"] == "room_deleted"
    finally:
        await user.close()
    assert (await lkapi.room.list_rooms(room.ListRoomsRequest(names=[room_name]))).rooms == []
    with pytest.raises(api.TwirpError) as caught:
        await lkapi.agent_dispatch.list_dispatch(room_name)
    assert caught.value.code == "unavailable"


async def test_json_bodies_and_bad_routes(sim: Simulator, room_name: str) -> None:
    token = api.AccessToken(API_KEY, "secret").with_grants(api.VideoGrants(room_create=True)).to_jwt()
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        url = f"{sim.url}/twirp/livekit.RoomService/CreateRoom"
        async with http.post(url, json={"name": room_name}, headers=headers) as resp:
            assert resp.status == 200
            assert (await resp.json())["name"] == room_name
        async with http.post(f"{sim.url}/twirp/livekit.RoomService/Nope", json={}, headers=headers) as resp:
            assert (resp.status, (await resp.json())["code"]) == (404, "bad_route")
        async with http.get(f"{sim.url}/") as resp:
            assert await resp.text() == "OK"
