"""Who sent a data packet, as a receiver sees it, on the real server and on the simulator alike (``livekit``): the
sender's identity and kind as the server stamped them (a client cannot choose them), none for the server API's
SendData and none for a hidden participant. Receivers of ``agent-status`` / ``flow-events`` rely on exactly this."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from livekit import api, rtc

from devstack.livekit_server import RunningLiveKit
from devstack.room_bus_client import BusParticipant, joined_bus

from .participants import is_simulator

DEADLINE_S = 8.0  # livekit-server announces participants that publish no track every 3 s
Heard = dict[str, tuple[str | None, str | None]]  # payload -> (sender identity, sender kind)


def _token(server: RunningLiveKit, room: str, identity: str, *, kind: str = "", hidden: bool = False) -> str:
    grants = api.VideoGrants(room_join=True, room=room, hidden=hidden, can_publish_data=True)
    token = api.AccessToken(server.api_key, server.api_secret).with_identity(identity).with_grants(grants)
    return (token.with_kind(kind) if kind else token).to_jwt()  # type: ignore[arg-type]


class _Rtc:
    """A real-SDK participant: what it heard (the sender as the SDK resolves it) and how it sends."""

    def __init__(self, room: rtc.Room) -> None:
        self.room = room
        self.heard: Heard = {}
        room.on("data_received", self._on_data)

    def _on_data(self, packet: rtc.DataPacket) -> None:
        sender = packet.participant
        kind = rtc.ParticipantKind.Name(sender.kind).removeprefix("PARTICIPANT_KIND_") if sender else None
        self.heard[packet.data.decode()] = (sender.identity if sender else None, kind)

    async def send(self, text: str) -> None:
        await self.room.local_participant.publish_data(text.encode(), reliable=True, topic="agent-status")

    def knows(self, identity: str) -> bool:
        return identity in self.room.remote_participants


class _Bus:
    """A simulator participant on the room bus: the sender as the simulator stamped it."""

    def __init__(self, member: BusParticipant) -> None:
        self.member = member
        self.heard: Heard = {}
        self.known: set[str] = {p["identity"] for p in member.joined["participants"]}

    async def pump(self) -> None:
        while True:
            frame = await self.member.frames.get()
            if frame.get("type") == "participant_joined":
                self.known.add(frame["participant"]["identity"])
            if frame.get("type") == "data":
                kind = frame.get("sender_kind")
                text = BusParticipant.payload(frame).decode()
                self.heard[text] = (frame.get("sender"), kind.upper() if kind else None)

    async def send(self, text: str) -> None:
        payload = base64.b64encode(text.encode()).decode()
        await self.member.ws.send_json({"type": "data", "payload": payload, "topic": "agent-status", "reliable": True})

    def knows(self, identity: str) -> bool:
        return identity in self.known


@asynccontextmanager
async def _joined(server: RunningLiveKit, token: str) -> AsyncIterator[_Rtc | _Bus]:
    if await is_simulator(server):
        async with joined_bus(server.url, token) as member:
            bus = _Bus(member)
            pump = asyncio.create_task(bus.pump())
            try:
                yield bus
            finally:
                pump.cancel()
        return
    room = rtc.Room()
    await room.connect(server.ws_url, token, rtc.RoomOptions(auto_subscribe=False))
    try:
        yield _Rtc(room)
    finally:
        await room.disconnect()


async def _until(check: object, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE_S
    while not check():  # type: ignore[operator]
        assert loop.time() < end, f"not within {DEADLINE_S} s: {what}"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(40)
async def test_a_receiver_sees_the_sender_the_server_stamped(livekit: RunningLiveKit) -> None:
    room = f"senders-{uuid.uuid4().hex[:10]}"
    async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk:
        await lk.room.create_room(api.CreateRoomRequest(name=room))
        try:
            async with (
                _joined(livekit, _token(livekit, room, "receiver")) as receiver,
                _joined(livekit, _token(livekit, room, "user-1")) as user,
                _joined(livekit, _token(livekit, room, "agent-1", kind="agent")) as agent,
                _joined(livekit, _token(livekit, room, "hidden-1", hidden=True)) as hidden,
            ):
                # a sender the receiver does not know yet is reported without its participant: wait for both
                await _until(lambda: receiver.knows("user-1") and receiver.knows("agent-1"), "senders announced")
                await user.send("from-user")
                await agent.send("from-agent")
                await hidden.send("from-hidden")
                await lk.room.send_data(api.SendDataRequest(room=room, data=b"from-server", topic="agent-status"))
                await _until(lambda: len(receiver.heard) == 4, f"four packets heard ({receiver.heard})")
                heard = dict(receiver.heard)
        finally:
            await lk.room.delete_room(api.DeleteRoomRequest(room=room))
    assert heard == {
        "from-user": ("user-1", "STANDARD"),
        "from-agent": ("agent-1", "AGENT"),
        "from-hidden": (None, None),
        "from-server": (None, None),
    }
