"""The Redis session ledger on a real Redis: state rules, leases, and replicas claiming disjoint watches."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from services.dispatcher.ledger import RedisSessionLedger


@pytest.fixture
def ledger(redis: Redis) -> RedisSessionLedger:
    """A ledger of its own (agent names namespace the keys)."""
    return RedisSessionLedger(redis, f"agent-{uuid.uuid4().hex[:8]}", ttl_s=300)


def _sid() -> str:
    return uuid.uuid4().hex


async def test_states_move_forward_only(ledger: RedisSessionLedger) -> None:
    sid = _sid()
    assert await ledger.remember(sid, "room-1", '{"a":1}', "corr") == "requested"
    assert await ledger.remember(sid, "room-2", "{}", "other") == "requested"  # first write wins
    assert await ledger.arm(sid, "AD_1", 1, 100.0)
    assert not await ledger.arm(sid, "AD_2", 1, 200.0)  # a redelivery does not re-arm
    assert await ledger.rearm(sid, "AD_2", 2, 300.0)
    record = await ledger.get(sid)
    assert record is not None
    assert (record.room_name, record.metadata, record.correlation_id) == ("room-1", '{"a":1}', "corr")
    assert (record.state, record.dispatch_id, record.attempt) == ("watching", "AD_2", 2)
    await ledger.mark_joined(sid)
    assert not await ledger.rearm(sid, "AD_3", 3, 400.0)
    closed = await ledger.close(sid)
    assert closed is not None and (closed.state, closed.room_name) == ("closed", "room-1")
    await ledger.mark_joined(sid)  # a late agent.joined does not reopen it
    assert (await ledger.remember(sid, "room-1", "{}", "corr")) == "closed"


async def test_remembers_the_readiness_deadline(ledger: RedisSessionLedger) -> None:
    sid, old = _sid(), _sid()
    await ledger.remember(sid, "room-1", "{}", "corr", 1_800_000_000.25)
    await ledger.remember(old, "room-2", "{}", "corr")  # as a caller that knows no deadline
    record, unknown = await ledger.get(sid), await ledger.get(old)
    assert record is not None and record.ready_deadline == 1_800_000_000.25
    assert unknown is not None and unknown.ready_deadline == 0.0


async def test_closed_before_requested_learns_the_room(ledger: RedisSessionLedger) -> None:
    sid = _sid()
    closed = await ledger.close(sid)
    assert closed is not None and closed.room_name == ""
    assert await ledger.remember(sid, "room-x", "{}", "corr") == "closed"
    assert not await ledger.arm(sid, "AD_1", 1, 1.0)
    record = await ledger.get(sid)
    assert record is not None and record.room_name == "room-x"


async def test_claims_are_leased(ledger: RedisSessionLedger) -> None:
    early, late = _sid(), _sid()
    for sid, deadline in ((early, 100.0), (late, 200.0)):
        await ledger.remember(sid, f"room-{sid}", "{}", "c")
        await ledger.arm(sid, "AD_1", 1, deadline)
    assert [r.session_id for r in await ledger.claim_due(150.0, lease_s=60, limit=10)] == [early]
    assert await ledger.claim_due(150.0, lease_s=60, limit=10) == []  # leased until 210
    assert {r.session_id for r in await ledger.claim_due(215.0, lease_s=60, limit=10)} == {early, late}
    await ledger.mark_joined(late)
    assert [r.session_id for r in await ledger.claim_due(1000.0, lease_s=60, limit=10)] == [early]


async def test_next_due_is_the_earliest_watch_deadline(ledger: RedisSessionLedger) -> None:
    assert await ledger.next_due() is None  # nothing watched: the watchdog's idle look finds nothing
    early, late = _sid(), _sid()
    for sid, deadline in ((late, 200.0), (early, 100.0)):
        await ledger.remember(sid, f"room-{sid}", "{}", "c")
        await ledger.arm(sid, "AD_1", 1, deadline)
    assert await ledger.next_due() == 100.0
    await ledger.claim_due(150.0, lease_s=60, limit=10)  # the early one leased until 210
    assert await ledger.next_due() == 200.0
    await ledger.mark_all_joined([early, late])
    assert await ledger.next_due() is None


async def test_concurrent_replicas_never_claim_the_same_watch(redis_url: str) -> None:
    agent_name = f"agent-{uuid.uuid4().hex[:8]}"
    clients = [Redis.from_url(redis_url) for _ in range(4)]
    try:
        replicas = [RedisSessionLedger(client, agent_name) for client in clients]
        sids = [_sid() for _ in range(200)]
        for sid in sids:
            await replicas[0].remember(sid, f"room-{sid}", "{}", "c")
            await replicas[0].arm(sid, "AD_1", 1, 10.0)

        async def drain(ledger: RedisSessionLedger) -> list[str]:
            taken: list[str] = []
            while batch := await ledger.claim_due(20.0, lease_s=60, limit=7):
                taken.extend(r.session_id for r in batch)
            return taken

        claimed = await asyncio.gather(*(drain(ledger) for ledger in replicas))
        everything = [sid for taken in claimed for sid in taken]
        assert sorted(everything) == sorted(sids)  # each exactly once
    finally:
        for client in clients:
            await client.aclose()


async def test_dispatch_tries_are_counted(ledger: RedisSessionLedger) -> None:
    sid = _sid()
    assert await ledger.remember_try(sid, "room-1", "{}", "corr") == ("requested", 0)
    assert await ledger.remember(sid, "room-1", "{}", "corr") == "requested"  # counts nothing
    assert await ledger.remember_try(sid, "room-1", "{}", "corr") == ("requested", 1)
