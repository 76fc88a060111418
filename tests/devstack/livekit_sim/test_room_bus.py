"""The room bus: presence, data packets, attributes and token checks."""

from __future__ import annotations

import base64
import datetime

import aiohttp
import pytest
from livekit import api

from devstack.livekit_sim import Simulator
from tests.polling import wait_until

from .conftest import API_KEY, BusClient, participant_token


async def test_two_participants_exchange_data(sim: Simulator, room_name: str) -> None:
    user = await BusClient.connect(sim, participant_token(room_name, "user-1"))
    bot = await BusClient.connect(sim, participant_token(room_name, "bot-1", kind="agent"))
    try:
        assert user.joined["participants"] == []
        assert [p["identity"] for p in bot.joined["participants"]] == ["user-1"]
        joined = await user.next_frame("participant_joined")
        assert (joined["participant"]["identity"], joined["participant"]["kind"]) == ("bot-1", "agent")

        await bot.send_data(b'{"type":"agent.ready"}', topic="agent-status", reliable=True)
        frame = await user.next_frame("data")
        assert base64.b64decode(frame["payload"]) == b'{"type":"agent.ready"}'
        assert (frame["topic"], frame["reliable"], frame["sender"]) == ("agent-status", True, "bot-1")

        await user.send_data(b"lossy", topic="t", reliable=False, to=["bot-1"])
        frame = await bot.next_frame("data")
        assert (base64.b64decode(frame["payload"]), frame["reliable"], frame["sender"]) == (b"lossy", False, "user-1")
    finally:
        await bot.close()
    assert (await user.next_frame("participant_left"))["identity"] == "bot-1"
    await user.close()
    await wait_until(lambda: not sim.state.rooms[room_name].participants, deadline_s=5.0, what="room empty")


async def test_server_send_data_reaches_participants(sim: Simulator, room_name: str) -> None:
    user = await BusClient.connect(sim, participant_token(room_name, "watcher"))
    try:
        async with api.LiveKitAPI(sim.url, API_KEY, "secret") as lkapi:
            await lkapi.room.send_data(
                api.SendDataRequest(room=room_name, data=b"evt", topic="flow-events", kind=api.DataPacket.RELIABLE)
            )
        frame = await user.next_frame("data")
        assert (base64.b64decode(frame["payload"]), frame["topic"], frame["sender"]) == (b"evt", "flow-events", None)
    finally:
        await user.close()


async def test_agent_may_set_attributes_standard_user_may_not(sim: Simulator, room_name: str) -> None:
    agent_token = (
        api.AccessToken(API_KEY, "secret")
        .with_identity("bot")
        .with_kind("agent")
        .with_grants(api.VideoGrants(room_join=True, room=room_name, can_update_own_metadata=True))
        .to_jwt()
    )
    bot = await BusClient.connect(sim, agent_token)
    user = await BusClient.connect(sim, participant_token(room_name, "user"))
    try:
        await bot.ws.send_json({"type": "set_attributes", "attributes": {"lk.agent.state": "listening"}})
        updated = await user.next_frame("participant_updated")
        assert updated["participant"]["attributes"] == {"lk.agent.state": "listening"}
        await user.ws.send_json({"type": "set_attributes", "attributes": {"a": "b"}})
        assert "not allowed" in (await user.next_frame("error"))["message"]
    finally:
        await bot.close()
        await user.close()


def admin_token() -> str:
    """A valid token without the join grant."""
    return api.AccessToken(API_KEY, "secret").with_grants(api.VideoGrants(room_create=True)).to_jwt()


@pytest.mark.parametrize(
    ("make_token", "params", "status"),
    [
        (lambda room: participant_token(room, "u", secret="wrong-secret"), {}, 401),
        (lambda room: participant_token(room, "u", ttl=datetime.timedelta(minutes=-5)), {}, 401),
        (lambda room: participant_token("another-room", "u"), {"room": "ROOM"}, 403),
        (
            lambda room: api.AccessToken(API_KEY, "secret").with_grants(api.VideoGrants(room_create=True)).to_jwt(),
            {},
            401,
        ),
        (lambda room: "not-a-jwt", {}, 401),
    ],
    ids=["wrong-secret", "expired", "wrong-room", "no-join-grant", "garbage"],
)
async def test_bad_tokens_are_refused(
    sim: Simulator, room_name: str, make_token: object, params: dict[str, str], status: int
) -> None:
    token = make_token(room_name)  # type: ignore[operator]
    query = {"access_token": token, **{k: v.replace("ROOM", room_name) for k, v in params.items()}}
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await http.ws_connect(f"{sim.ws_url}/sim/rtc", params=query)
    assert caught.value.status == status
    assert room_name not in sim.state.rooms


async def test_same_identity_replaces_the_older_session(sim: Simulator, room_name: str) -> None:
    first = await BusClient.connect(sim, participant_token(room_name, "u"))
    second = await BusClient.connect(sim, participant_token(room_name, "u"))
    try:
        assert (await first.next_frame("disconnected"))["reason"] == "duplicate_identity"
        assert list(sim.state.rooms[room_name].participants) == ["u"]
    finally:
        await first.close()
        await second.close()


async def test_idle_room_closes_after_departure_timeout(sim: Simulator, room_name: str) -> None:
    user = await BusClient.connect(sim, participant_token(room_name, "u"))
    sim.state.rooms[room_name].info.departure_timeout = 0
    await user.close()
    await wait_until(lambda: room_name not in sim.state.rooms, deadline_s=3.0, what="idle room closed")
