"""The dispatcher's LiveKit adapter against a real LiveKit server: get-or-create rooms, one dispatch per room,
clean-up, and flow events through the server API's SendData to hidden watchers, by role (livekit.rtc clients)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
from livekit import api, rtc

from contracts.datachannel import FLOW_EVENTS_TOPIC, trusted_sender
from contracts.flow_events import FlowEvent, project
from devstack.livekit_server import RunningLiveKit
from services.api.tokens import watcher_token
from services.dispatcher.dispatch_dedup import ensure_single_dispatch
from services.dispatcher.flow_relay import RoomWatchers, relay_flow_event
from services.dispatcher.livekit_rooms import LiveKitRoomsClient
from services.runtime.retrying import RetryPolicy

DELIVERY_DEADLINE_S = 10.0


class CountingSequencer:
    """``seq`` per message, in send order (the Redis one is tested with the relay)."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    async def seq_for(self, session_id: str, message_id: str) -> int:
        return self.seen.setdefault(message_id, len(self.seen) + 1)


@asynccontextmanager
async def rooms_client(server: RunningLiveKit, agent_name: str) -> AsyncIterator[LiveKitRoomsClient]:
    """The dispatcher's adapter, as its composition root builds it."""
    async with api.LiveKitAPI(server.url, server.api_key, server.api_secret) as lk:
        client = LiveKitRoomsClient(lambda: lk, agent_name, api.CreateRoomRequest(empty_timeout=60), max_in_flight=8)
        yield client


class Listener:
    """A livekit.rtc participant that keeps every data packet it receives."""

    def __init__(self) -> None:
        self.room = rtc.Room()
        self.packets: list[rtc.DataPacket] = []
        self.room.on("data_received", self.packets.append)

    def on(self, topic: str) -> list[bytes]:
        """The packets on ``topic`` from the sender it must have (flow-events: the server), as a watcher reads them."""
        return [p.data for p in self.packets if p.topic == topic and _trusted(p)]


def _trusted(packet: rtc.DataPacket) -> bool:
    sender = packet.participant
    from_agent = sender is not None and sender.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
    message_type = json.loads(packet.data).get("type") if packet.data.startswith(b"{") else None
    return trusted_sender(packet.topic, message_type, from_agent=from_agent, from_server=sender is None)


async def until(done: Callable[[], bool], deadline_s: float = DELIVERY_DEADLINE_S) -> None:
    """Poll ``done`` until it is true or ``deadline_s`` passed (the caller asserts the outcome)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        if done() or loop.time() >= end:
            return
        await asyncio.sleep(0.05)


async def joined(stack: AsyncExitStack, server: RunningLiveKit, token: str) -> Listener:
    listener = Listener()
    await listener.room.connect(server.ws_url, token)
    stack.push_async_callback(listener.room.disconnect)
    return listener


async def test_rooms_are_get_or_create_and_dispatches_are_not_duplicated(real_livekit: RunningLiveKit) -> None:
    room, agent_name = f"disp-{uuid.uuid4().hex[:10]}", f"nobody-{uuid.uuid4().hex[:8]}"
    async with rooms_client(real_livekit, agent_name) as client:
        await client.ensure_room(room, '{"sessionId": "a"}')
        await client.ensure_room(room, '{"sessionId": "b"}')  # a redelivery: the open room is left as it is
        first = await ensure_single_dispatch(client, room, "{}")
        second = await ensure_single_dispatch(client, room, "{}")  # listed first: not dispatched twice
        assert first == second
        async with api.LiveKitAPI(real_livekit.url, real_livekit.api_key, real_livekit.api_secret) as lk:
            ours = [d.id for d in await lk.agent_dispatch.list_dispatch(room) if d.agent_name == agent_name]
            assert ours == [first]
            await client.remove_room(room)
            assert not (await lk.room.list_rooms(api.ListRoomsRequest(names=[room]))).rooms
        await client.remove_room(room)  # already gone: success


@pytest.mark.timeout(60)
async def test_flow_events_reach_each_watcher_as_its_role_allows_and_never_the_user(
    real_livekit: RunningLiveKit,
) -> None:
    room, sid = f"watched-{uuid.uuid4().hex[:10]}", str(uuid.uuid4())
    key, secret = real_livekit.api_key, real_livekit.api_secret
    user_token = (
        api.AccessToken(key, secret)
        .with_identity("user-1")
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .to_jwt()
    )
    events = [
        FlowEvent(session_id=sid, room_name=room, kind="lifecycle", name="session.dispatched"),
        FlowEvent(session_id=sid, room_name=room, kind="stage", name="stage.started", data={"stage": "greeting"}),
        FlowEvent(session_id=sid, room_name=room, kind="flow", name="flow.initialised", details={"flowId": "f"}),
        FlowEvent(session_id=sid, room_name=room, kind="error", name="stage.failed", error={"reason": "x"}),
    ]
    async with rooms_client(real_livekit, "agentready") as client, AsyncExitStack() as stack:
        await client.ensure_room(room, "{}")
        user = await joined(stack, real_livekit, user_token)
        watchers = {
            role: await joined(
                stack,
                real_livekit,
                watcher_token(key, secret, room_name=room, identity=f"{role}-1", role=role, ttl_s=60),
            )
            for role in ("monitor", "supervisor", "admin")
        }
        sequencer = CountingSequencer()
        relay = RoomWatchers(client.room_watchers, ttl_s=0)
        retry = RetryPolicy(attempts=3, max_seconds=5.0, initial_s=0.1)
        for event in events:
            await relay_flow_event(event, relay, client, sequencer, retry)
        wanted = {
            role: [p.to_bytes() for e in events if (p := project(e, role, sequencer.seen[e.message_id])) is not None]
            for role in watchers
        }
        await until(lambda: all(len(w.on(FLOW_EVENTS_TOPIC)) >= len(wanted[r]) for r, w in watchers.items()))
        for role, listener in watchers.items():
            assert listener.on(FLOW_EVENTS_TOPIC) == wanted[role], role  # in order, byte for byte
        assert [len(wanted[r]) for r in ("monitor", "supervisor", "admin")] == [2, 3, 4]
        assert user.on(FLOW_EVENTS_TOPIC) == []
        assert not {f"{r}-1" for r in watchers} & set(user.room.remote_participants)  # watchers are hidden
        await client.remove_room(room)
