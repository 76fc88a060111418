"""Batch consumption (services/runtime/batch.py, batch_guard.py) on real Redis: the per-message guarantees hold
for batches."""

from __future__ import annotations

import asyncio
from collections import Counter

from redis.asyncio import Redis

from services.runtime.delivery import DeliveryPolicy
from tests.delivery.harness import FAST, BatchProbe, Job, batch_consumer_app, publish
from tests.polling import wait_until


async def _ok(_: list[Job]) -> None:
    return None


async def _nothing_pending(redis: Redis, probe: BatchProbe) -> bool:
    return int((await redis.xpending(probe.stream, probe.group))["pending"]) == 0


async def test_a_backlog_is_handled_in_batches_of_at_most_max_records(redis_url: str, redis: Redis) -> None:
    probe = BatchProbe()
    await redis.xgroup_create(probe.stream, probe.group, id="0", mkstream=True)
    await publish(redis_url, probe.stream, *range(25))  # waiting before the consumer starts: one read takes many
    async with batch_consumer_app(redis_url, probe, "c1", _ok, max_records=10):
        await wait_until(lambda: len(probe.done) == 25, deadline_s=10, what="25 jobs handled")
        await wait_until(lambda: _nothing_pending(redis, probe), deadline_s=5, what="all acked")
    assert sorted(probe.done) == list(range(25))
    assert max(len(batch) for batch in probe.batches) == 10, probe.batches
    assert [n for batch in probe.batches for n in batch] == list(range(25))  # stream order, each once


async def test_a_poison_message_is_isolated_from_its_batch_and_dead_lettered(redis_url: str, redis: Redis) -> None:
    probe = BatchProbe()

    async def poison_13(jobs: list[Job]) -> None:
        if any(job.n == 13 for job in jobs):
            raise ValueError("13 is poison")

    await redis.xgroup_create(probe.stream, probe.group, id="0", mkstream=True)
    await publish(redis_url, probe.stream, *range(30))
    await redis.xadd(probe.stream, {"not": "an event"})
    async with batch_consumer_app(redis_url, probe, "c1", poison_13):
        await wait_until(lambda: _dead_and_done(redis, probe), deadline_s=15, what="2 dead letters and nothing pending")
    dead = await redis.xrange(probe.dead)
    errors = sorted(fields[b"dead:error"].decode().split(":")[0] for _, fields in dead)
    assert errors == ["ValidationError", "ValueError"]
    assert {fields[b"dead:attempts"] for _, fields in dead} == {str(FAST.max_deliveries).encode()}
    # the batch that held 13 was retried one by one: its other jobs were handled (once each), 13 never
    assert sorted(probe.done) == [n for n in range(30) if n != 13]
    assert Counter(n for batch in probe.batches for n in batch)[13] == FAST.max_deliveries + 1  # batch, then alone


async def test_an_entry_faststream_cannot_decode_is_dead_lettered_and_the_rest_flow(
    redis_url: str, redis: Redis
) -> None:
    # FastStream decodes a whole batch before any handler runs; a body that is not UTF-8 made it raise, so the batch
    # came back on every claim and never reached the guard that counts and dead-letters it.
    probe = BatchProbe()
    await redis.xgroup_create(probe.stream, probe.group, id="0", mkstream=True)
    await publish(redis_url, probe.stream, *range(5))
    await redis.xadd(probe.stream, {"__data__": b"\xff not an event"})
    await publish(redis_url, probe.stream, *range(5, 10))
    async with batch_consumer_app(redis_url, probe, "c1", _ok):
        await wait_until(lambda: _dead_and_done(redis, probe, 1), deadline_s=15, what="1 dead letter, nothing pending")
    assert sorted(probe.done) == list(range(10))
    [(_, fields)] = await redis.xrange(probe.dead)
    assert fields[b"__data__"] == b"\xff not an event"  # the entry as it was, for whoever looks at it
    assert fields[b"dead:attempts"] == str(FAST.max_deliveries).encode()


async def _dead_and_done(redis: Redis, probe: BatchProbe, letters: int = 2) -> bool:
    return int(await redis.xlen(probe.dead)) == letters and await _nothing_pending(redis, probe)


async def test_the_claimer_takes_over_the_batch_of_a_killed_consumer(redis_url: str, redis: Redis) -> None:
    probe = BatchProbe()
    await redis.xgroup_create(probe.stream, probe.group, id="0", mkstream=True)
    await publish(redis_url, probe.stream, *range(5))
    await redis.xreadgroup(probe.group, "killed-replica", {probe.stream: ">"})  # read, never acked
    async with batch_consumer_app(redis_url, probe, "survivor", _ok):
        await wait_until(
            lambda: _nothing_pending(redis, probe), deadline_s=FAST.claim_idle_s + 5, what="claimed and acked"
        )
    assert sorted(probe.done) == list(range(5))


async def test_infrastructure_failures_of_a_batch_do_not_count(redis_url: str, redis: Redis) -> None:
    probe = BatchProbe()
    policy = DeliveryPolicy(max_deliveries=2, claim_idle_s=0.3, polling_ms=50)

    async def database_down_four_times(_: list[Job]) -> None:
        if len(probe.batches) <= 4:
            raise ConnectionRefusedError("database is down")

    async with batch_consumer_app(redis_url, probe, "c1", database_down_four_times, policy=policy):
        await publish(redis_url, probe.stream, 7, 8)
        await wait_until(lambda: sorted(probe.done) == [7, 8], deadline_s=15, what="handled once the database is back")
        await wait_until(lambda: _nothing_pending(redis, probe), deadline_s=5, what="acked")
    assert int(await redis.xlen(probe.dead)) == 0


async def test_a_slow_batch_keeps_its_lease_and_runs_once(redis_url: str, redis: Redis) -> None:
    probe = BatchProbe()

    async def slow(_: list[Job]) -> None:
        await asyncio.sleep(FAST.claim_idle_s * 4)

    # two replicas: without the lease, the other's claimer would take the batch after claim_idle_s
    async with batch_consumer_app(redis_url, probe, "a", slow), batch_consumer_app(redis_url, probe, "b", slow):
        await publish(redis_url, probe.stream, 1)
        await wait_until(
            lambda: bool(probe.done) and _nothing_pending(redis, probe),
            deadline_s=FAST.claim_idle_s * 4 + 5,
            what="slow batch acked",
        )
    assert probe.batches == [[1]]
