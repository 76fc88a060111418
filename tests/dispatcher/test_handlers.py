"""The dispatcher's handlers as plain functions over replaced dependencies (the seam ``bootstrap`` offers tests):
a request delivered twice still gets one dispatch, and an agent joining stops the watch."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from contracts.events import Event, SessionDispatched, SessionStatusChanged
from contracts.flow_events import FlowEvent
from contracts.keys import dispatch_lock_key
from contracts.streams import AGENT_JOINED
from services.dispatcher.dispatch_state import DispatchState
from services.dispatcher.flow_relay import RoomWatchers
from services.dispatcher.handlers import (
    BATCH_HANDLERS,
    HANDLERS,
    Dependencies,
    on_requested,
    on_status_changes,
)
from services.dispatcher.ledger import RedisSessionLedger
from services.dispatcher.pacing import DispatchPacer, PacingPolicy
from services.dispatcher.room_locks import RedisRoomLocks
from services.dispatcher.status_changes import RedisStatusChanges
from services.dispatcher.watchdog import WatchdogPolicy

from .fakes import FAST, FakeLedger, FakeRooms, NoLocks, session_request


class FakeServer(FakeRooms):
    """FakeRooms plus what the flow relay asks of LiveKit (no watchers, nothing sent)."""

    async def room_watchers(self, room_name: str) -> dict[str, str]:
        return {}

    async def send_data(self, room_name: str, payload: bytes, *, topic: str, destinations: list[str]) -> None:
        raise AssertionError("no watcher, nothing to send")


class Recorded:
    """An EventPublisher that keeps what it was given."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, event: Event) -> None:
        self.events.append(event)


class Numbering:
    """A FlowSequencer that numbers every message 1."""

    async def seq_for(self, session_id: str, message_id: str) -> int:
        return 1


def _deps(rooms: FakeServer, ledger: FakeLedger, publisher: Recorded) -> Dependencies:
    return Dependencies(
        rooms=rooms,
        locks=NoLocks(),
        ledger=ledger,
        publisher=publisher,
        watchers=RoomWatchers(rooms.room_watchers, 1.0),
        sequencer=Numbering(),
        pacer=DispatchPacer(ledger.waiting, PacingPolicy(max_waiting=0, max_wait_s=1.0)),
        retry=FAST,
        relay_retry=FAST,
        watchdog=WatchdogPolicy(join_timeout_s=30),
    )


async def test_a_request_delivered_twice_gets_one_dispatch() -> None:
    rooms, ledger, published = FakeServer(), FakeLedger(), Recorded()
    deps, request = _deps(rooms, ledger, published), session_request()
    await on_requested(request, deps)
    await on_requested(request, deps)  # redelivered
    assert len(rooms.dispatches[request.room_name]) == 1
    assert [type(e) for e in published.events] == [SessionDispatched, SessionDispatched]
    # the first made it with the room (its id unknown), the redelivery found it by listing
    assert [e.dispatch_id for e in published.events if isinstance(e, SessionDispatched)] == [
        "",
        rooms.dispatches[request.room_name][0],
    ]
    assert ledger.records[request.session_id].state == DispatchState.WATCHING


async def test_an_agent_joining_stops_the_watch() -> None:
    """The session store's change to ``agent_joined`` (made of the agent's ``agent.joined``) disarms the watchdog:
    the dispatcher subscribes to no ``agent.joined`` of its own."""
    rooms, ledger, published = FakeServer(), FakeLedger(), Recorded()
    deps, request = _deps(rooms, ledger, published), session_request()
    await on_requested(request, deps)
    assert await ledger.waiting() == 1
    await on_status_changes([_change(request.session_id, "dispatched", "agent_joined")], deps)
    assert ledger.records[request.session_id].state == DispatchState.JOINED
    assert await ledger.waiting() == 0
    assert AGENT_JOINED not in {**HANDLERS, **BATCH_HANDLERS}


async def test_the_clean_up_of_a_joined_session_deletes_only_its_room() -> None:
    """Its one dispatch's agent joined, so nothing of it can start later: the room's deletion is enough. After a
    re-dispatch, or without an agent, the dispatches are deleted first (a job may still be on offer)."""
    rooms, ledger, published = FakeServer(), FakeLedger(), Recorded()
    deps = _deps(rooms, ledger, published)
    joined, redispatched, never_joined = session_request(), session_request(), session_request()
    for request in (joined, redispatched, never_joined):
        await on_requested(request, deps)
    await ledger.rearm(redispatched.session_id, "AD_second", 2, 1e12)
    for request in (joined, redispatched):
        await on_status_changes([_change(request.session_id, "dispatched", "agent_joined")], deps)
    for request in (joined, redispatched, never_joined):
        await on_status_changes([_change(request.session_id, "agent_joined", "ended")], deps)
        assert request.room_name not in rooms.rooms
    assert rooms.removed_joined == [True, False, False]


def _change(sid: str, before: str | None, after: str) -> SessionStatusChanged:
    return SessionStatusChanged(session_id=sid, from_status=before, to_status=after)


async def test_a_batch_of_changes_tells_watchers_in_order_and_cleans_up_what_is_over() -> None:
    rooms, ledger, published = FakeServer(), FakeLedger(), Recorded()
    deps = _deps(rooms, ledger, published)
    first, second = session_request(), session_request()
    for request in (first, second):
        await on_requested(request, deps)
    published.events.clear()
    batch = [
        _change(first.session_id, "dispatched", "agent_joined"),
        _change(second.session_id, "agent_joined", "ready"),
        _change(first.session_id, "agent_joined", "ready"),
        _change(first.session_id, "ready", "ended"),
    ]
    await on_status_changes(batch, deps)
    flows = [e for e in published.events if isinstance(e, FlowEvent)]
    assert [(f.session_id, f.name) for f in flows] == [
        (first.session_id, "session.agent_joined"),
        (second.session_id, "session.ready"),
        (first.session_id, "session.ready"),
        (first.session_id, "session.ended"),
    ]  # every room here counts as watched
    assert first.room_name not in rooms.rooms and second.room_name in rooms.rooms
    assert ledger.records[first.session_id].state == DispatchState.CLOSED
    assert ledger.records[second.session_id].state == DispatchState.JOINED


async def test_requests_dispatch_each_once_and_publish_how_it_went() -> None:
    rooms, ledger, published = FakeServer(), FakeLedger(), Recorded()
    deps, first, second = _deps(rooms, ledger, published), session_request(), session_request()
    for request in (first, second, first):  # a request delivered twice
        await on_requested(request, deps)
    assert {room: len(ids) for room, ids in rooms.dispatches.items()} == {first.room_name: 1, second.room_name: 1}
    assert sorted(e.session_id for e in published.events) == sorted(
        [first.session_id, first.session_id, second.session_id]
    )


class BrokenRemoval(FakeServer):
    """Removes rooms, except one whose removal breaks with an error no retry absorbs (the batch fails)."""

    def __init__(self, broken_room: str) -> None:
        super().__init__()
        self.broken_room = broken_room

    async def remove_room(self, room_name: str, *, agent_joined: bool = False) -> None:
        if room_name == self.broken_room:
            raise RuntimeError("removal broke")
        await super().remove_room(room_name, agent_joined=agent_joined)


@pytest.mark.parametrize("fails", [False, True])
async def test_the_room_locks_a_batch_took_are_released_after_its_clean_ups(redis: Redis, fails: bool) -> None:
    """The batch's script takes the locks of the sessions that are over; they go in one round trip once the
    clean-ups are done, and also when one failed (the batch is retried: it takes them again)."""
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    ledger = RedisSessionLedger(redis, agent, ttl_s=300)
    locks = RedisRoomLocks(redis, ttl_s=5, wait_s=0.2)
    sessions = [uuid.uuid4().hex for _ in range(3)]
    for sid in sessions:
        await ledger.remember(sid, f"session-{sid}", "{}", "corr")
        await ledger.arm(sid, "AD_1", 1, 1e12)
    rooms = BrokenRemoval(f"session-{sessions[0]}" if fails else "")
    changes = RedisStatusChanges(redis, locks, agent, 300)
    deps = replace(_deps(rooms, FakeLedger(), Recorded()), locks=locks, ledger=ledger, changes=changes)
    batch = [_change(sid, "ready", "ended") for sid in sessions]
    if fails:
        with pytest.raises(RuntimeError, match="removal broke"):
            await on_status_changes(batch, deps)
    else:
        await on_status_changes(batch, deps)
    assert rooms.removed_joined == ([False, False] if fails else [False, False, False])
    for sid in sessions:
        assert not await redis.exists(dispatch_lock_key(f"session-{sid}"))
