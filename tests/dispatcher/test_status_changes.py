"""A status change's effect on the dispatcher's state in one round trip (real Redis): the same outcome as through the
separate ports (ledger, watch check, live sessions), one script call per change."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis
from redis.exceptions import LockError

from contracts.events import SessionStatusChanged
from contracts.keys import dispatch_lock_key, watched_room_key
from services.dispatcher.ledger import RedisSessionLedger
from services.dispatcher.live_sessions import RedisLiveSessions
from services.dispatcher.room_locks import RedisRoomLocks
from services.dispatcher.room_sweep import LiveSession
from services.dispatcher.status_changes import PortStatusChanges, RedisStatusChanges, StatusChanges
from tests.dispatcher.counting_redis import CountingRedis


def _change(sid: str, before: str | None, after: str) -> SessionStatusChanged:
    return SessionStatusChanged(session_id=sid, correlation_id=f"corr-{sid[:6]}", from_status=before, to_status=after)


async def _setup(redis: Redis, agent: str, watched: bool) -> tuple[str, RedisSessionLedger, RedisLiveSessions]:
    sid = uuid.uuid4().hex
    ledger, live = RedisSessionLedger(redis, agent, ttl_s=300), RedisLiveSessions(redis, agent)
    await ledger.remember(sid, f"session-{sid}", "{}", f"corr-{sid[:6]}")
    await ledger.arm(sid, "AD_1", 1, 1e12)
    if watched:
        await redis.set(watched_room_key(f"session-{sid}"), "1", ex=60)
    return sid, ledger, live


@pytest.mark.parametrize("watched", [False, True])
@pytest.mark.parametrize("kind", ["redis", "ports"])
async def test_a_session_is_tracked_while_live_and_closed_when_over(
    counting: CountingRedis, watched: bool, kind: str
) -> None:
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    sid, ledger, live = await _setup(counting, agent, watched)
    changes: StatusChanges = (
        RedisStatusChanges(counting, RedisRoomLocks(counting), agent, 300)
        if kind == "redis"
        else PortStatusChanges(ledger, lambda room: _exists(counting, room), live)
    )
    room = f"session-{sid}"

    pending = await changes.apply(_change(sid, None, "pending"), 100.0)
    assert pending.record is not None and (pending.record.room_name, pending.watched) == (room, watched)
    assert await live.watched() == 0  # nothing tracked before the session is live

    assert await ledger.waiting() == 1  # armed by its dispatch
    await changes.apply(_change(sid, "dispatched", "agent_joined"), 100.0)
    # the agent joined: the watchdog is disarmed by the change (the dispatcher reads no agent.joined of its own)
    joined = await ledger.get(sid)
    assert joined is not None and joined.state == "joined" and await ledger.waiting() == 0
    await changes.apply(_change(sid, "agent_joined", "ready"), 500.0)  # keeps the first due time
    assert await live.claim_due(100.0, 200.0, 10) == [LiveSession(sid, room, f"corr-{sid[:6]}")]

    counting.sent = 0
    ended = await changes.apply(_change(sid, "ready", "ended"), 100.0)
    if kind == "redis":
        assert counting.sent == 1  # read, watch check, untrack and close: one round trip
    assert ended.record is not None and (ended.record.state, ended.watched) == ("joined", watched)  # as it was
    closed = await ledger.get(sid)
    assert closed is not None and closed.state == "closed"
    assert await live.watched() == 0 and await ledger.waiting() == 0
    assert await ledger.remember(sid, room, "{}", "corr") == "closed"  # never dispatched again


async def test_a_change_of_a_session_never_requested_here_closes_it(counting: CountingRedis) -> None:
    agent, sid = f"agent-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    changes, ledger = (
        RedisStatusChanges(counting, RedisRoomLocks(counting), agent, 300),
        RedisSessionLedger(counting, agent, ttl_s=300),
    )
    assert (await changes.apply(_change(sid, "pending", "agent_joined"), 1.0)).record is None
    assert await ledger.get(sid) is None  # disarming a session never requested here makes no record
    assert await RedisLiveSessions(counting, agent).watched() == 0  # no room to track
    view = await changes.apply(_change(sid, "pending", "failed"), 1.0)
    assert (view.record, view.watched) == (None, False)
    assert await ledger.remember(sid, "late-room", "{}", "corr") == "closed"


async def _exists(redis: Redis, room: str) -> bool:
    return bool(await redis.exists(watched_room_key(room)))


async def test_a_batch_is_applied_in_order_in_one_round_trip(counting: CountingRedis) -> None:
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    (one, ledger, live), (two, _, _) = await _setup(counting, agent, False), await _setup(counting, agent, True)
    changes = RedisStatusChanges(counting, RedisRoomLocks(counting), agent, 300)
    await changes.apply(_change(one, None, "pending"), 1.0)  # loads the script
    batch = [
        _change(one, "agent_joined", "ready"),
        _change(two, "pending", "dispatched"),
        _change(one, "ready", "ended"),
    ]
    counting.sent = 0
    views = await changes.apply_all(batch, [100.0, 100.0, 100.0])
    assert counting.sent == 1
    assert [v.watched for v in views] == [False, True, False]
    # each as it was before its change: the ready before the end disarmed the watchdog (in order, in one batch)
    assert [v.record.state if v.record else None for v in views] == ["watching", "watching", "joined"]
    assert await live.watched() == 0  # tracked, then untracked by the later change of the same batch
    closed = await ledger.get(one)
    assert closed is not None and closed.state == "closed"
    assert await changes.apply_all([], []) == []


async def test_a_terminal_change_takes_its_room_lock_for_the_clean_up(counting: CountingRedis) -> None:
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    (one, _, _), (two, _, _) = await _setup(counting, agent, False), await _setup(counting, agent, False)
    locks = RedisRoomLocks(counting, ttl_s=0.3, wait_s=0.2)
    changes = RedisStatusChanges(counting, locks, agent, 300)
    ready, ended = await changes.apply_all(
        [_change(one, "agent_joined", "ready"), _change(one, "ready", "ended")], [1, 1]
    )
    assert ready.room_lock is None and ended.room_lock is not None  # only a session that is over is cleaned up
    room = f"session-{one}"
    assert await counting.exists(dispatch_lock_key(room))
    with pytest.raises(LockError):  # a dispatch or the watchdog waits for the clean-up
        async with locks.hold(room):
            pytest.fail("the clean-up's lock was free")
    async with ended.locks(locks).hold(room):
        await asyncio.sleep(0.5)  # outlives the lock's TTL: renewed while the clean-up runs
        assert await counting.exists(dispatch_lock_key(room))
    assert await counting.exists(dispatch_lock_key(room))  # kept for the batch: released with the others
    await changes.release([ready, ended])
    assert not await counting.exists(dispatch_lock_key(room))
    async with locks.hold(f"session-{two}"):  # a room locked elsewhere: its clean-up takes the lock itself
        (busy,) = await changes.apply_all([_change(two, "ready", "failed")], [1])
    assert busy.room_lock is None and busy.locks(locks) is locks


async def test_the_batch_releases_its_taken_locks_in_one_round_trip_and_only_its_own(counting: CountingRedis) -> None:
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    sessions = [(await _setup(counting, agent, False))[0] for _ in range(4)]
    locks = RedisRoomLocks(counting, ttl_s=5, wait_s=0.2)
    changes = RedisStatusChanges(counting, locks, agent, 300)
    views = await changes.apply_all([_change(sid, "ready", "ended") for sid in sessions], [1] * 4)
    assert all(view.room_lock is not None for view in views)
    lapsed = dispatch_lock_key(f"session-{sessions[0]}")
    await counting.set(lapsed, "someone-else", px=5000)  # lapsed and taken by another holder meanwhile
    await locks.release_all([("no-such-room", "x")])  # Redis learns the script (its first call loads it)
    counting.sent = 0
    await changes.release(views)
    assert counting.sent == 1
    counting.sent = 0
    await changes.release([])  # nothing taken: no round trip needed, none made
    assert counting.sent == 0
    assert await counting.get(lapsed) == b"someone-else"  # not ours any more: left alone
    for sid in sessions[1:]:
        assert not await counting.exists(dispatch_lock_key(f"session-{sid}"))
