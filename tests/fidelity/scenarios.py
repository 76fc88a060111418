"""Scripted livekit-api calls, run the same way against the real server and the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from livekit import api

from .observe import observe


def listed(lk: api.LiveKitAPI, room: str) -> Awaitable[list[api.AgentDispatch]]:
    """ListDispatch, in creation order (the server lists from a Go map: its order is random)."""

    async def call() -> list[api.AgentDispatch]:
        found = await lk.agent_dispatch.list_dispatch(room)
        return sorted(found, key=lambda d: d.state.created_at)

    return call()


Scenario = Callable[[api.LiveKitAPI, str], Awaitable[dict[str, Any]]]
OVERSIZE_METADATA = "x" * (512 * 1024 + 1)  # one byte over the server's default limit.max_metadata_size


async def rooms(lk: api.LiveKitAPI, name: str) -> dict[str, Any]:
    """Create twice (the second is ignored), list, empty participants, update metadata, delete twice."""
    out: dict[str, Any] = {}
    out["create"] = await observe(
        lk.room.create_room(api.CreateRoomRequest(name=name, metadata="first", empty_timeout=120, departure_timeout=9))
    )
    out["create_again"] = await observe(
        lk.room.create_room(api.CreateRoomRequest(name=name, metadata="second", empty_timeout=60, max_participants=3))
    )
    out["list"] = await observe(lk.room.list_rooms(api.ListRoomsRequest(names=[name])))
    out["participants"] = await observe(lk.room.list_participants(api.ListParticipantsRequest(room=name)))
    nobody = api.RoomParticipantIdentity(room=name, identity="x")
    out["get_participant"] = await observe(lk.room.get_participant(nobody))
    out["remove_participant"] = await observe(
        lk.room.remove_participant(api.RoomParticipantIdentity(room=name, identity="x"))
    )
    out["update_metadata"] = await observe(
        lk.room.update_room_metadata(api.UpdateRoomMetadataRequest(room=name, metadata="third"))
    )
    out["send_data"] = await observe(
        lk.room.send_data(api.SendDataRequest(room=name, data=b"{}", topic="flow-events", kind=api.DataPacket.RELIABLE))
    )
    bad_nonce = api.SendDataRequest(room=name, data=b"{}", nonce=b"x")
    out["send_data_bad_nonce"] = await observe(lk.room.send_data(bad_nonce))
    out["delete"] = await observe(lk.room.delete_room(api.DeleteRoomRequest(room=name)))
    out["delete_again"] = await observe(lk.room.delete_room(api.DeleteRoomRequest(room=name)))
    out["list_after"] = await observe(lk.room.list_rooms(api.ListRoomsRequest(names=[name])))
    out["update_metadata_missing"] = await observe(
        lk.room.update_room_metadata(api.UpdateRoomMetadataRequest(room=name, metadata="x"))
    )
    return out


async def dispatches(lk: api.LiveKitAPI, name: str) -> dict[str, Any]:
    """The automatic dispatch, two explicit ones (not de-duplicated), delete one, unknown id; nobody serves them."""
    out: dict[str, Any] = {}
    out["create_room"] = await observe(lk.room.create_room(api.CreateRoomRequest(name=name)))
    out["list_fresh"] = await observe(listed(lk, name))
    request = api.CreateAgentDispatchRequest(agent_name=f"nobody-{name}", room=name, metadata='{"n": 1}')
    out["dispatch_1"] = await observe(lk.agent_dispatch.create_dispatch(request))
    out["dispatch_2"] = await observe(lk.agent_dispatch.create_dispatch(request))
    out["list_3"] = await observe(listed(lk, name))
    first = out["dispatch_1"].get("ok", {}).get("id", "")
    out["delete_1"] = await observe(lk.agent_dispatch.delete_dispatch(first, name))
    out["list_2"] = await observe(listed(lk, name))
    out["delete_unknown"] = await observe(lk.agent_dispatch.delete_dispatch("AD_unknown", name))
    out["delete_room"] = await observe(lk.room.delete_room(api.DeleteRoomRequest(room=name)))
    # CreateDispatch on a missing room: with room.auto_create false (both servers here) nothing is created
    out["dispatch_new_room"] = await observe(
        lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name="a", room=f"{name}-auto"))
    )
    out["list_new_room"] = await observe(listed(lk, f"{name}-auto"))
    out["rooms_new_room"] = await observe(lk.room.list_rooms(api.ListRoomsRequest(names=[f"{name}-auto"])))
    out["delete_new_room"] = await observe(lk.room.delete_room(api.DeleteRoomRequest(room=f"{name}-auto")))
    return out


async def room_agents(lk: api.LiveKitAPI, name: str) -> dict[str, Any]:
    """A room made with its agent (the dispatcher's first try): that dispatch only; a second CreateRoom adds none."""
    out: dict[str, Any] = {}
    agents = [api.RoomAgentDispatch(agent_name=f"nobody-{name}", metadata='{"n": 1}')]
    out["create"] = await observe(lk.room.create_room(api.CreateRoomRequest(name=name, agents=agents)))
    out["list"] = await observe(listed(lk, name))
    other = [api.RoomAgentDispatch(agent_name=f"other-{name}")]
    out["create_again"] = await observe(lk.room.create_room(api.CreateRoomRequest(name=name, agents=other)))
    out["list_again"] = await observe(listed(lk, name))
    out["delete_room"] = await observe(lk.room.delete_room(api.DeleteRoomRequest(room=name)))
    return out


async def missing_room(lk: api.LiveKitAPI, name: str) -> dict[str, Any]:
    """Calls on a room that does not exist (the real server needs ~3 s for each room-topic RPC: run at once)."""
    calls = {
        "list_dispatch": listed(lk, name),
        "delete_dispatch": lk.agent_dispatch.delete_dispatch("AD_unknown", name),
        "send_data": lk.room.send_data(api.SendDataRequest(room=name, data=b"{}")),
        "list_participants": lk.room.list_participants(api.ListParticipantsRequest(room=name)),
        "delete_room": lk.room.delete_room(api.DeleteRoomRequest(room=name)),
        "list_rooms": lk.room.list_rooms(api.ListRoomsRequest(names=[name])),
    }
    answers = await asyncio.gather(*(observe(call) for call in calls.values()))
    return dict(zip(calls, answers, strict=True))


async def limits(lk: api.LiveKitAPI, name: str) -> dict[str, Any]:
    """Sizes over the server's limits: invalid_argument, with the server's messages."""
    calls = {
        "room_metadata": lk.room.create_room(api.CreateRoomRequest(name=name, metadata=OVERSIZE_METADATA)),
        "room_name": lk.room.create_room(api.CreateRoomRequest(name="n" * 257)),
        "room_agent_metadata": lk.room.create_room(
            api.CreateRoomRequest(name=name, agents=[api.RoomAgentDispatch(agent_name="a", metadata=OVERSIZE_METADATA)])
        ),
        "dispatch_metadata": lk.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name="a", room=name, metadata=OVERSIZE_METADATA)
        ),
        "update_metadata": lk.room.update_room_metadata(
            api.UpdateRoomMetadataRequest(room=name, metadata=OVERSIZE_METADATA)
        ),
        "room_name_at_limit": lk.room.create_room(api.CreateRoomRequest(name=f"{name}-" + "n" * (255 - len(name)))),
    }
    answers = [await observe(call) for call in calls.values()]
    await lk.room.delete_room(api.DeleteRoomRequest(room=f"{name}-" + "n" * (255 - len(name))))
    return dict(zip(calls, answers, strict=True))


async def auth(lk: api.LiveKitAPI, name: str) -> dict[str, Any]:
    """A bad signature (401, plain text), an unknown key, an expired token, missing grants (``unauthenticated``)."""
    base = str(lk.room._client.host)  # the URL the fixture gave, as the client resolved it

    def client(token: str) -> api.LiveKitAPI:
        return api.LiveKitAPI(base, token=token, failover=False)

    def token(grants: api.VideoGrants, *, secret: str = "secret", key: str = "devkey", identity: str = "") -> str:
        return api.AccessToken(key, secret).with_identity(identity).with_grants(grants).to_jwt()

    everything = api.VideoGrants(room_create=True, room_list=True, room_admin=True, room=name)
    cases = {
        "bad_signature": (token(everything, secret="not-the-secret"), "list_rooms"),
        "unknown_key": (token(everything, key="nobody"), "list_rooms"),
        "join_only_create": (token(api.VideoGrants(room_join=True, room=name), identity="u"), "create_room"),
        "no_list_grant": (token(api.VideoGrants(room_create=True)), "list_rooms"),
        "admin_other_room": (token(api.VideoGrants(room_admin=True, room=f"{name}-other")), "list_participants"),
        "admin_other_room_dispatch": (token(api.VideoGrants(room_admin=True, room=f"{name}-other")), "list_dispatch"),
    }
    out: dict[str, Any] = {}
    for label, (jwt, method) in cases.items():
        async with client(jwt) as other:
            out[label] = await observe(_call(other, method, name))
    return out


def _call(lk: api.LiveKitAPI, method: str, name: str) -> Awaitable[Any]:
    if method == "list_rooms":
        return lk.room.list_rooms(api.ListRoomsRequest())
    if method == "create_room":
        return lk.room.create_room(api.CreateRoomRequest(name=name))
    if method == "list_participants":
        return lk.room.list_participants(api.ListParticipantsRequest(room=name))
    return lk.agent_dispatch.list_dispatch(name)


SCENARIOS: dict[str, Scenario] = {
    "auth": auth,
    "rooms": rooms,
    "dispatches": dispatches,
    "room_agents": room_agents,
    "missing_room": missing_room,
    "limits": limits,
}
