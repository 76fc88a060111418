"""The dispatch gate on real Redis: the room's lock and the ledger's first steps in one round trip each way, the same
lock the watchdog and clean-up take (exclusive with it, renewed while held, released however the block ends)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from faststream.redis import RedisBroker
from redis.asyncio import Redis
from redis.exceptions import LockError

from contracts.events import SessionDispatched
from contracts.keys import dispatch_lock_key
from contracts.streams import SESSION_DISPATCHED
from services.dispatcher.dispatch_gate import PublishIn, RedisDispatchGate, SessionSeen
from services.dispatcher.ledger import RedisSessionLedger
from services.dispatcher.room_locks import RedisRoomLocks
from services.runtime.publishing import BrokerPublisher
from tests.dispatcher.conftest import events_on
from tests.dispatcher.counting_redis import CountingRedis

TTL_S = 0.3  # renewed every 0.1 s


def _seen() -> SessionSeen:
    sid = uuid.uuid4().hex
    return SessionSeen(sid, f"session-{sid}", '{"m":1}', f"corr-{sid[:6]}", 2e9)


def _gate(
    redis: Redis, agent: str, wait_s: float = 1.0, publish_in: PublishIn | None = None
) -> tuple[RedisDispatchGate, RedisRoomLocks]:
    locks = RedisRoomLocks(redis, ttl_s=TTL_S, wait_s=wait_s)
    return RedisDispatchGate(redis, locks, agent, 300, publish_in), locks


@pytest.fixture
async def publisher(redis_url: str) -> AsyncIterator[BrokerPublisher]:
    """The dispatcher's publisher on the test's Redis."""
    broker = RedisBroker(redis_url)
    await broker.connect()
    yield BrokerPublisher(broker)
    await broker.stop()


def _dispatched(seen: SessionSeen, dispatch_id: str) -> SessionDispatched:
    ids = {"session_id": seen.session_id, "correlation_id": seen.correlation_id}
    return SessionDispatched(**ids, room_name=seen.room_name, dispatch_id=dispatch_id)


async def _published(redis: Redis, session_id: str) -> list[str]:
    events = await events_on(redis, SESSION_DISPATCHED, SessionDispatched)
    return [event.dispatch_id for event in events if event.session_id == session_id]


async def test_the_announcement_goes_with_the_watch_and_the_release_in_one_round_trip(
    counting: CountingRedis, publisher: BrokerPublisher
) -> None:
    agent, seen = f"agent-{uuid.uuid4().hex[:8]}", _seen()
    gate, _ = _gate(counting, agent, publish_in=publisher.publish_in)
    async with gate.enter(_seen()) as warm_up:  # loads the scripts
        warm_up.arm("AD_0", 1, 1.0)
    counting.sent = 0
    async with gate.enter(seen) as entry:
        entry.arm("AD_1", 1, 1234.5)
        entry.announce(_dispatched(seen, "AD_1"))
    assert counting.sent == 2  # enter; then the watch, the release and the XADD
    assert entry.armed and entry.announced and not await counting.exists(dispatch_lock_key(seen.room_name))
    assert await _published(counting, seen.session_id) == ["AD_1"]
    record = await RedisSessionLedger(counting, agent, ttl_s=300).get(seen.session_id)
    assert record is not None and (record.state, record.dispatch_id) == ("watching", "AD_1")


async def test_an_announcing_leave_loads_its_script_when_redis_lost_it(
    redis: Redis, publisher: BrokerPublisher
) -> None:
    agent, seen = f"agent-{uuid.uuid4().hex[:8]}", _seen()
    gate, _ = _gate(redis, agent, publish_in=publisher.publish_in)
    async with gate.enter(seen) as entry:
        await redis.script_flush()  # a restarted Redis: the leave script's hash is unknown
        entry.arm("AD_1", 1, 1234.5)
        entry.announce(_dispatched(seen, "AD_1"))
    assert entry.armed and entry.announced and not await redis.exists(dispatch_lock_key(seen.room_name))
    assert await _published(redis, seen.session_id) == ["AD_1"]  # once


async def test_a_block_that_fails_announces_nothing(redis: Redis, publisher: BrokerPublisher) -> None:
    agent, seen = f"agent-{uuid.uuid4().hex[:8]}", _seen()
    gate, _ = _gate(redis, agent, publish_in=publisher.publish_in)
    entries: list[Any] = []

    async def fail_inside() -> None:
        async with gate.enter(seen) as entry:
            entries.append(entry)
            entry.announce(_dispatched(seen, "AD_1"))
            raise RuntimeError("LiveKit went away")

    with pytest.raises(RuntimeError):
        await fail_inside()
    assert not entries[0].announced and not await redis.exists(dispatch_lock_key(seen.room_name))
    assert await _published(redis, seen.session_id) == []


async def test_lock_remember_arm_and_release_in_two_round_trips(counting: CountingRedis) -> None:
    agent, seen = f"agent-{uuid.uuid4().hex[:8]}", _seen()
    gate, _ = _gate(counting, agent)
    ledger = RedisSessionLedger(counting, agent, ttl_s=300)
    async with gate.enter(_seen()) as warm_up:  # loads the scripts
        warm_up.arm("AD_0", 1, 1.0)
    counting.sent = 0
    async with gate.enter(seen) as entry:
        assert (entry.state, entry.tries_before) == ("requested", 0)
        sent_inside = counting.sent
        assert await counting.exists(dispatch_lock_key(seen.room_name))
        entry.arm("AD_1", 1, 1234.5)
    assert sent_inside == 1 and counting.sent == 3  # enter, the check, leave
    assert entry.armed and not await counting.exists(dispatch_lock_key(seen.room_name))
    record = await ledger.get(seen.session_id)
    assert record is not None
    assert (record.state, record.dispatch_id, record.room_name, record.metadata) == (
        "watching", "AD_1", seen.room_name, seen.metadata,
    )  # fmt: skip
    assert record in await ledger.claim_due(1234.5, 60, 10)
    async with gate.enter(seen) as again:  # a redelivery: a try was made before
        assert (again.state, again.tries_before) == ("watching", 1)
        again.arm("AD_2", 1, 99.0)
    assert not again.armed  # only a requested session is armed


async def test_the_gate_and_the_room_lock_exclude_each_other(redis: Redis) -> None:
    agent, seen = f"agent-{uuid.uuid4().hex[:8]}", _seen()
    gate, locks = _gate(redis, agent, wait_s=0.3)
    async with locks.hold(seen.room_name):  # a clean-up or the watchdog holds the room
        with pytest.raises(LockError):
            async with gate.enter(seen):
                pytest.fail("entered a locked room")
    async with gate.enter(seen):
        with pytest.raises(LockError):
            async with RedisRoomLocks(redis, ttl_s=TTL_S, wait_s=0.3).hold(seen.room_name):
                pytest.fail("held a room inside the gate")


async def test_the_lock_is_renewed_while_held_and_released_when_the_block_fails(redis: Redis) -> None:
    agent, seen = f"agent-{uuid.uuid4().hex[:8]}", _seen()
    gate, _ = _gate(redis, agent)
    held: list[bool] = []

    async def fail_inside() -> None:
        async with gate.enter(seen) as entry:
            entries.append(entry)
            await asyncio.sleep(TTL_S * 3)  # outlives the TTL: only the renewals keep it
            held.append(bool(await redis.exists(dispatch_lock_key(seen.room_name))))
            raise RuntimeError("LiveKit went away")

    entries: list[Any] = []
    with pytest.raises(RuntimeError):
        await fail_inside()
    assert held == [True] and not entries[0].armed and not await redis.exists(dispatch_lock_key(seen.room_name))
    record = await RedisSessionLedger(redis, agent, ttl_s=300).get(seen.session_id)
    assert record is not None and record.state == "requested"
