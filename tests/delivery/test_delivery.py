"""The runtime's delivery guarantees on real Redis: claimer, leases, transient failures, dead letters; each test
runs with both per-message readers (``subscribe`` and ``subscribe_concurrent``)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from faststream import FastStream
from redis.asyncio import Redis

from services.runtime.delivery import DeliveryPolicy, is_transient
from tests.delivery.harness import FAST, Job, Probe, consumer_app, publish
from tests.polling import wait_until

AppFor = Callable[..., FastStream]


@pytest.fixture(params=[False, True], ids=["faststream_per_message", "concurrent_stream"])
def app_for(request: pytest.FixtureRequest) -> AppFor:
    """:func:`consumer_app` read by one of the two per-message readers."""
    concurrent: Any = request.param
    return partial(consumer_app, concurrent=concurrent)


async def _ok(_: Job) -> None:
    return None


async def test_poison_is_dead_lettered_after_the_limit_while_the_rest_flow(
    redis_url: str, redis: Redis, app_for: AppFor
) -> None:
    probe = Probe()

    async def poison_13(job: Job) -> None:
        if job.n == 13:
            raise ValueError("13 is poison")

    app = app_for(redis_url, probe, "c1", poison_13)
    async with app:
        await publish(redis_url, probe.stream, *range(30))
        await redis.xadd(probe.stream, {"not": "an event"})
        bound = 10.0
        took = await wait_until(
            lambda: _dead_and_done(redis, probe), deadline_s=bound, what="2 dead letters and nothing pending"
        )
    dead = await redis.xrange(probe.dead)
    errors = sorted(fields[b"dead:error"].decode().split(":")[0] for _, fields in dead)
    assert errors == ["ValidationError", "ValueError"]
    assert {fields[b"dead:attempts"] for _, fields in dead} == {str(FAST.max_deliveries).encode()}
    counts = Counter(probe.calls)
    assert counts[13] == FAST.max_deliveries
    assert all(counts[n] == 1 for n in range(30) if n != 13), counts
    print(f"poison dead-lettered after {FAST.max_deliveries} attempts in {took:.1f} s (bound {bound} s)")


async def _dead_and_done(redis: Redis, probe: Probe) -> bool:
    pending = await redis.xpending(probe.stream, probe.group)
    return int(await redis.xlen(probe.dead)) == 2 and pending["pending"] == 0


async def test_claimer_takes_over_the_messages_of_a_killed_consumer(
    redis_url: str, redis: Redis, app_for: AppFor
) -> None:
    probe = Probe()
    await redis.xgroup_create(probe.stream, probe.group, id="0", mkstream=True)
    await publish(redis_url, probe.stream, *range(5))
    # a replica read them and was killed before acking: they sit in its pending list forever
    await redis.xreadgroup(probe.group, "killed-replica", {probe.stream: ">"})
    async with app_for(redis_url, probe, "survivor", _ok):
        bound = FAST.claim_idle_s + 5
        took = await wait_until(
            lambda: _nothing_pending(redis, probe),
            deadline_s=bound,
            what="the survivor claims and acks the killed one's messages",
        )
    assert sorted(probe.calls) == list(range(5))
    print(f"claimed after {took:.1f} s (idle {FAST.claim_idle_s} s, bound {bound} s)")


async def _nothing_pending(redis: Redis, probe: Probe) -> bool:
    return int((await redis.xpending(probe.stream, probe.group))["pending"]) == 0


async def test_a_slow_handler_keeps_its_lease_and_runs_once(redis_url: str, redis: Redis, app_for: AppFor) -> None:
    probe = Probe()

    async def slow(_: Job) -> None:
        await asyncio.sleep(FAST.claim_idle_s * 4)

    # two replicas: without the lease, the other's claimer would take the message after claim_idle_s
    async with app_for(redis_url, probe, "a", slow), app_for(redis_url, probe, "b", slow):
        await publish(redis_url, probe.stream, 1)
        await wait_until(
            lambda: _nothing_pending_after_one(redis, probe),
            deadline_s=FAST.claim_idle_s * 4 + 5,
            what="slow job acked",
        )
    assert probe.calls == [1]


async def _nothing_pending_after_one(redis: Redis, probe: Probe) -> bool:
    return bool(probe.calls) and await _nothing_pending(redis, probe)


async def test_infrastructure_failures_do_not_count_toward_the_limit(
    redis_url: str, redis: Redis, app_for: AppFor
) -> None:
    probe = Probe()
    policy = DeliveryPolicy(max_deliveries=2, claim_idle_s=0.3, polling_ms=50)

    async def database_down_four_times(job: Job) -> None:
        if len(probe.calls) <= 4:
            raise ConnectionRefusedError("database is down")

    async with app_for(redis_url, probe, "c1", database_down_four_times, policy=policy):
        await publish(redis_url, probe.stream, 7)
        await wait_until(
            lambda: _nothing_pending_after_one(redis, probe), deadline_s=15, what="handled once the database is back"
        )
    assert len(probe.calls) == 5
    assert int(await redis.xlen(probe.dead)) == 0


async def test_a_hung_handler_is_cancelled_at_its_deadline_and_its_message_retried(
    redis_url: str, redis: Redis, app_for: AppFor
) -> None:
    """Without the deadline the lease would keep the message from every claimer, forever."""
    probe = Probe()
    policy = DeliveryPolicy(max_deliveries=3, claim_idle_s=0.6, polling_ms=100, handler_timeout_s=0.5)
    never = asyncio.Event()

    async def hangs_the_first_time(_: Job) -> None:
        if len(probe.calls) == 1:
            await never.wait()

    async with app_for(redis_url, probe, "c1", hangs_the_first_time, policy=policy):
        await publish(redis_url, probe.stream, 3)
        bound = policy.handler_timeout_s + policy.claim_idle_s + 5
        await wait_until(
            lambda: _nothing_pending_after_one(redis, probe), deadline_s=bound, what="handled on the retry"
        )
    assert probe.calls == [3, 3]
    assert int(await redis.xlen(probe.dead)) == 0  # a timeout counts as transient, not toward the limit


def test_transient_errors_are_told_apart_by_cause() -> None:
    wrapped = RuntimeError("query failed")
    wrapped.__cause__ = ConnectionResetError("peer went away")
    assert is_transient(wrapped)
    assert not is_transient(ValueError("bad payload"))


def test_an_idle_claimer_looks_again_after_a_tenth_of_the_claim_idle_time_when_that_is_longer() -> None:
    assert DeliveryPolicy(claim_idle_s=30, polling_ms=1000).claim_every_ms == 3000
    assert DeliveryPolicy(claim_idle_s=0.6, polling_ms=100).claim_every_ms == 100  # the tests' fast claims stay fast


async def test_a_message_handled_at_once_starts_no_lease_task(redis_url: str, redis: Redis, app_for: AppFor) -> None:
    """The lease is a timer until its first renewal is due: no task per message (the renewal of a slow handler is
    kept: test_a_slow_handler_keeps_its_lease_and_runs_once)."""
    probe = Probe()
    renewals: list[str] = []

    async def look(_: Job) -> None:
        names = [task.get_coro().__qualname__ for task in asyncio.all_tasks()]  # type: ignore[union-attr]
        renewals.extend(name for name in names if name.startswith(("_lease", "BatchLease")))

    async with app_for(redis_url, probe, "c1", look):
        await publish(redis_url, probe.stream, 1, 2, 3)
        await wait_until(lambda: _nothing_pending_after(redis, probe, 3), deadline_s=10.0, what="3 handled")
    assert sorted(probe.calls) == [1, 2, 3]
    assert renewals == []


async def _nothing_pending_after(redis: Redis, probe: Probe, count: int) -> bool:
    return len(probe.calls) >= count and await _nothing_pending(redis, probe)


async def test_a_held_message_holds_neither_the_others_acks_nor_the_reads(
    redis_url: str, redis: Redis, app_for: AppFor
) -> None:
    """One message held (by a pacer, a retry) while the rest flow: every other is handled and acked meanwhile."""
    probe = Probe()
    release = asyncio.Event()

    async def hold_zero(job: Job) -> None:
        if job.n == 0:
            await release.wait()

    async with app_for(redis_url, probe, "c1", hold_zero, max_workers=4):
        await publish(redis_url, probe.stream, *range(20))
        await wait_until(
            lambda: _only_pending(redis, probe, 1), deadline_s=10.0, what="19 handled and acked while one is held"
        )
        assert sorted(probe.calls) == list(range(20))
        release.set()
        await wait_until(lambda: _only_pending(redis, probe, 0), deadline_s=10.0, what="the held one acked")
    assert sorted(probe.calls) == list(range(20))


async def _only_pending(redis: Redis, probe: Probe, count: int) -> bool:
    return len(probe.calls) >= 20 and int((await redis.xpending(probe.stream, probe.group))["pending"]) == count


async def test_a_message_in_flight_at_shutdown_finishes_and_is_acked(
    redis_url: str, redis: Redis, app_for: AppFor
) -> None:
    probe = Probe()
    done: list[int] = []

    async def slow(job: Job) -> None:
        await asyncio.sleep(0.3)
        done.append(job.n)

    async with app_for(redis_url, probe, "c1", slow):
        await publish(redis_url, probe.stream, 5)
        await wait_until(lambda: _called(probe), deadline_s=10.0, what="the handler started")
    assert done == [5]
    assert await _nothing_pending(redis, probe)


async def _called(probe: Probe) -> bool:
    return bool(probe.calls)
