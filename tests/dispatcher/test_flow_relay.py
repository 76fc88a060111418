"""The flow-events relay: unit tests on fakes, and one run through the simulator with a user, a monitor
and an admin in one room (real dispatcher app, real Redis, real livekit-api SendData)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from contracts.events import SessionDispatched, SessionStatusChanged
from contracts.flow_events import FlowEvent
from contracts.keys import watched_room_key
from contracts.streams import FLOW_EVENT, SESSION_DISPATCHED, SESSION_STATUS_CHANGED, Groups
from devstack.livekit_sim import Simulator
from services.api.tokens import watcher_token
from services.dispatcher.flow_relay import RoomWatchers, relay_flow_event
from services.dispatcher.ports import TransientLiveKitError
from services.dispatcher.retries import RetryPolicy
from tests.agent.bus_client import BusParticipant, join_bus, participant_token
from tests.polling import wait_until

from .conftest import Publish, events_on, wait_consumed, wait_for_events
from .fakes import session_request

FAST = RetryPolicy(attempts=2, max_seconds=1.0, initial_s=0.01)


class FakeSender:
    def __init__(self, fail: int = 0) -> None:
        self.sent: list[tuple[str, list[str], dict[str, Any]]] = []
        self.fail = fail

    async def send_data(self, room_name: str, payload: bytes, *, topic: str, destinations: list[str]) -> None:
        if self.fail:
            self.fail -= 1
            raise TransientLiveKitError("unavailable")
        assert topic == "flow-events"
        self.sent.append((room_name, destinations, json.loads(payload)))


class CountingSequencer:
    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    async def seq_for(self, session_id: str, message_id: str) -> int:
        return self.seen.setdefault(message_id, len(self.seen) + 1)


def lister(rooms: dict[str, dict[str, str]], calls: list[str]) -> Callable[[str], Any]:
    async def list_watchers(room: str) -> dict[str, str]:
        calls.append(room)
        return rooms.get(room, {})

    return list_watchers


def flow_event(kind: str, name: str, room: str = "r1", **parts: Any) -> FlowEvent:
    return FlowEvent(session_id="s1", room_name=room, kind=kind, name=name, **parts)  # type: ignore[arg-type]


async def test_one_send_per_role_allowed_and_none_without_watchers() -> None:
    calls: list[str] = []
    rooms = {"r1": {"m1": "monitor", "m2": "monitor", "a1": "admin", "s1": "supervisor"}}
    watchers, sender, seq = RoomWatchers(lister(rooms, calls), ttl_s=60), FakeSender(), CountingSequencer()
    stage = flow_event("stage", "stage.started", data={"stage": "connect"})
    assert sorted(await relay_flow_event(stage, watchers, sender, seq, FAST)) == ["admin", "monitor", "supervisor"]
    assert [(d, p["seq"]) for _, d, p in sender.sent] == [(["a1"], 1), (["m1", "m2"], 1), (["s1"], 1)]
    error = flow_event("error", "stage.failed", data={"stage": "greeting"}, error={"reason": "tts down"})
    assert await relay_flow_event(error, watchers, sender, seq, FAST) == ["admin"]
    assert sender.sent[-1][2]["error"] == {"reason": "tts down"} and sender.sent[-1][2]["seq"] == 2
    assert calls == ["r1"]  # listed once, then cached
    empty = flow_event("stage", "stage.started", room="r2")
    assert await relay_flow_event(empty, watchers, sender, seq, FAST) == []
    assert len(sender.sent) == 4 and "s1" not in str(seq.seen.get(empty.message_id))


async def test_an_unwatched_room_costs_no_livekit_call() -> None:
    calls: list[str] = []
    rooms = {"r1": {"m1": "monitor"}, "r2": {"m2": "monitor"}}

    async def is_watched(room_name: str) -> bool:
        return room_name == "r1"  # only r1 had a watcher token minted

    watchers = RoomWatchers(lister(rooms, calls), ttl_s=60, is_watched=is_watched)
    sender, seq = FakeSender(), CountingSequencer()
    assert await relay_flow_event(flow_event("stage", "stage.started", room="r2"), watchers, sender, seq, FAST) == []
    assert await relay_flow_event(flow_event("stage", "stage.started"), watchers, sender, seq, FAST) == ["monitor"]
    assert calls == ["r1"]


async def test_a_failed_send_lists_again_and_a_gone_room_is_nobody_to_tell() -> None:
    calls: list[str] = []
    rooms = {"r1": {"m1": "monitor"}}
    watchers, sender, seq = RoomWatchers(lister(rooms, calls), ttl_s=60), FakeSender(fail=1), CountingSequencer()
    event = flow_event("lifecycle", "session.ready")
    assert await relay_flow_event(event, watchers, sender, seq, FAST) == ["monitor"]
    assert calls == ["r1", "r1"] and sender.sent[0][2]["seq"] == 1  # a retry keeps the number
    sender.fail, rooms["r1"] = 5, {}
    watchers.forget("r1")
    assert await relay_flow_event(flow_event("stage", "x"), watchers, sender, seq, FAST) == []


def flow_frames(member: BusParticipant) -> list[dict[str, Any]]:
    """The flow-events payloads ``member`` received so far (frames are taken off its queue)."""
    found = []
    while not member.frames.empty():
        frame = member.frames.get_nowait()
        if frame.get("type") == "data" and frame.get("topic") == "flow-events":
            assert frame["sender"] is None and frame["reliable"] is True  # SendData from the server API
            found.append(json.loads(base64.b64decode(frame["payload"])))
    return found


async def test_user_monitor_and_admin_in_one_room_get_exactly_their_events(
    sim: Simulator, running: Publish, dispatcher_redis_url: str
) -> None:
    request = session_request()
    sid, room = request.session_id, request.room_name
    await running(request)  # the dispatcher creates the room and remembers it for lifecycle events
    await wait_for_events(
        dispatcher_redis_url, SESSION_DISPATCHED, SessionDispatched, lambda es: any(e.session_id == sid for e in es)
    )
    redis = Redis.from_url(dispatcher_redis_url)
    try:  # what the API's watch endpoint does when it mints a watcher token
        await redis.set(watched_room_key(room), "1", ex=60)
    finally:
        await redis.aclose()
    monitor_token = watcher_token("devkey", "secret", room_name=room, identity="mon-1", role="monitor", ttl_s=60)
    admin_token = watcher_token("devkey", "secret", room_name=room, identity="adm-1", role="admin", ttl_s=60)
    async with (
        join_bus(sim.url, participant_token(room, "user-1")) as user,
        join_bus(sim.url, participant_token(room, "agent-1", kind="agent")) as agent,
        join_bus(sim.url, monitor_token) as monitor,
        join_bus(sim.url, admin_token) as admin,
    ):
        status = '{"type":"agent.ready"}'
        await agent.ws.send_json({"type": "data", "payload": base64.b64encode(status.encode()).decode(),
                                  "topic": "agent-status", "reliable": True})  # fmt: skip
        ids = {"session_id": sid, "room_name": room}
        await running(SessionStatusChanged(session_id=sid, from_status="pending", to_status="dispatched"))
        for event in (
            FlowEvent(**ids, kind="stage", name="stage.started", data={"stage": "greeting"}),
            FlowEvent(**ids, kind="flow", name="flow.initialised", details={"flowId": "flow"}),
            FlowEvent(**ids, kind="stage", name="stage.finished", data={"stage": "greeting", "durationMs": 5.0}),
            FlowEvent(**ids, kind="error", name="stage.failed", data={"stage": "announce"}, error={"reason": "x"}),
        ):
            await running(event)
        got: dict[str, list[dict[str, Any]]] = {"monitor": [], "admin": []}

        def admin_has_all() -> bool:
            got["admin"] += flow_frames(admin)
            return len(got["admin"]) == 5

        await wait_until(admin_has_all, deadline_s=10.0, what="admin received 5 flow events")
        assert [e["name"] for e in got["admin"] if e["kind"] != "lifecycle"] == [
            "stage.started", "flow.initialised", "stage.finished", "stage.failed",
        ]  # fmt: skip
        lifecycle = next(e for e in got["admin"] if e["kind"] == "lifecycle")
        assert lifecycle["name"] == "session.dispatched" and lifecycle["data"]["status"] == "dispatched"
        assert next(e for e in got["admin"] if e["kind"] == "error")["error"] == {"reason": "x"}
        seqs = [e["seq"] for e in got["admin"]]
        assert seqs == sorted(seqs) and len(set(seqs)) == 5  # in order, one number each

        await wait_until(
            lambda: len(got["monitor"]) == 3 or bool(got["monitor"].extend(flow_frames(monitor))),
            deadline_s=10.0,
            what="monitor received 3 flow events",
        )
        assert sorted(e["kind"] for e in got["monitor"]) == ["lifecycle", "stage", "stage"]
        assert all("details" not in e and "error" not in e for e in got["monitor"])
        assert [e["seq"] for e in got["monitor"]] == sorted(e["seq"] for e in got["monitor"])

        status_frame = await user.next_frame("data", timeout=5.0)
        assert status_frame["topic"] == "agent-status"
        rest = []
        while not user.frames.empty():
            rest.append(user.frames.get_nowait())
        assert not [f for f in rest if f.get("type") == "data"]  # the user never gets flow events
        # hidden watchers are never announced to the user
        assert not [f for f in rest if f.get("type") == "participant_joined" and "-1" in f["participant"]["identity"]
                    and f["participant"]["identity"] != "agent-1"]  # fmt: skip


async def test_status_changes_of_an_unwatched_room_are_not_turned_into_flow_events(
    sim: Simulator, running: Publish, dispatcher_redis_url: str
) -> None:
    request = session_request()
    sid, room = request.session_id, request.room_name
    await running(request)
    await wait_for_events(
        dispatcher_redis_url, SESSION_DISPATCHED, SessionDispatched, lambda es: any(e.session_id == sid for e in es)
    )
    await running(SessionStatusChanged(session_id=sid, from_status="pending", to_status="dispatched"))
    redis = Redis.from_url(dispatcher_redis_url)
    try:
        await wait_consumed(dispatcher_redis_url, SESSION_STATUS_CHANGED, group=Groups.DISPATCHER)
        mine = [e for e in await events_on(redis, FLOW_EVENT, FlowEvent) if e.session_id == sid]
        assert mine == []  # nobody watches: not even one XADD for the relay to drop
        await redis.set(watched_room_key(room), "1", ex=60)  # what /watch does
        await running(SessionStatusChanged(session_id=sid, from_status="dispatched", to_status="agent_joined"))
        found = await wait_for_events(
            dispatcher_redis_url, FLOW_EVENT, FlowEvent, lambda es: any(e.session_id == sid for e in es)
        )
        assert [e.name for e in found if e.session_id == sid] == ["session.agent_joined"]
    finally:
        await redis.aclose()
