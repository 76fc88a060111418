"""The concurrent stream reader (services/runtime/concurrent_stream) on real Redis: what differs from the per-message
reader (the guarantees both keep are tests/delivery/test_delivery.py's, run with each)."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from services.runtime.delivery import DeliveryPolicy, entry_body
from tests.delivery.harness import Job, Probe, consumer_app, publish
from tests.polling import wait_until

# the reader blocks 2 s: an ack that waits for its next read is seen waiting
SLOW_READS = DeliveryPolicy(max_deliveries=3, claim_idle_s=10, polling_ms=2000)


async def test_a_handled_message_is_acked_with_the_next_read_and_at_shutdown(redis_url: str, redis: Redis) -> None:
    """No XACK round trip of its own: the ack goes before the reader's next XREADGROUP (or as it stops)."""
    probe = Probe()
    done: list[int] = []

    async def record(job: Job) -> None:
        done.append(job.n)

    async with consumer_app(redis_url, probe, "c1", record, policy=SLOW_READS, concurrent=True):
        await publish(redis_url, probe.stream, 1)
        await wait_until(lambda: done == [1], deadline_s=10.0, what="1 handled")
        assert await _pending_ids(redis, probe) == [1]  # its ack waits for the next read
        await publish(redis_url, probe.stream, 2)
        # 2 woke the reader: its next read acked 1; 2's ack waits in turn
        await wait_until(lambda: _pending_after(redis, probe, done, [2]), deadline_s=10.0, what="1 acked, 2 handled")
    assert await _pending_ids(redis, probe) == []  # the reader's last acks were sent as it stopped


async def _pending_ids(redis: Redis, probe: Probe) -> list[int]:
    pending = await redis.xpending_range(probe.stream, probe.group, min="-", max="+", count=10)
    ids = {entry["message_id"] for entry in pending}
    entries = await redis.xrange(probe.stream)
    return [Job.model_validate_json(entry_body(fields)).n for entry_id, fields in entries if entry_id in ids]


async def _pending_after(redis: Redis, probe: Probe, done: list[int], pending: list[int]) -> bool:
    return done == [1, 2] and await _pending_ids(redis, probe) == pending


async def test_it_reads_no_more_than_its_free_workers_take(redis_url: str, redis: Redis) -> None:
    """A read message waits in memory for nothing: with every worker held, the rest stay unread in the stream."""
    probe = Probe()
    release = asyncio.Event()

    async def held(_: Job) -> None:
        await release.wait()

    async with consumer_app(redis_url, probe, "c1", held, policy=SLOW_READS, max_workers=2, concurrent=True):
        await publish(redis_url, probe.stream, *range(6))
        await wait_until(lambda: len(probe.calls) == 2, deadline_s=10.0, what="both workers busy")
        assert int((await redis.xpending(probe.stream, probe.group))["pending"]) == 2  # the other 4 not read
        release.set()
        await wait_until(lambda: len(probe.calls) == 6, deadline_s=10.0, what="the rest read as workers free up")
    assert sorted(probe.calls) == list(range(6))
    assert int((await redis.xpending(probe.stream, probe.group))["pending"]) == 0
