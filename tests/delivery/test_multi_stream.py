"""One batch reader over several streams (services/runtime/multi_stream.py) on real Redis: batches span streams,
and every per-message guarantee holds per stream (ack, dead letter, claim, order)."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from services.runtime.delivery import DeliveryPolicy
from services.runtime.running import RunSettings, serve
from tests.delivery.harness import FAST, Job, MultiProbe, multi_consumer_app, publish
from tests.polling import wait_until


async def _ok(_: list[Job]) -> None:
    return None


async def _nothing_pending(redis: Redis, probe: MultiProbe) -> bool:
    for stream in probe.streams:
        if int((await redis.xpending(stream, probe.group))["pending"]) != 0:
            return False
    return True


async def _groups(redis: Redis, probe: MultiProbe) -> None:
    for stream in probe.streams:
        await redis.xgroup_create(stream, probe.group, id="0", mkstream=True)


async def test_one_batch_holds_the_events_of_several_streams_each_acked_in_stream_order(
    redis_url: str, redis: Redis
) -> None:
    probe = MultiProbe()
    await _groups(redis, probe)
    for index, stream in enumerate(probe.streams):  # waiting before the consumer starts: one read takes them all
        await publish(redis_url, stream, *range(index * 100, index * 100 + 4))
    async with multi_consumer_app(redis_url, probe, "c1", _ok):
        await wait_until(lambda: len(probe.done) == 12, deadline_s=10, what="12 jobs handled")
        await wait_until(lambda: _nothing_pending(redis, probe), deadline_s=5, what="all acked")
    assert len(probe.batches) == 1, probe.batches  # one read, one handler call for all three streams
    handled = [n for batch in probe.batches for n in batch]
    assert sorted(handled) == sorted(n for i in range(3) for n in range(i * 100, i * 100 + 4))
    for index in range(3):  # each stream's order kept
        of_stream = [n for n in handled if n // 100 == index]
        assert of_stream == sorted(of_stream)
    for stream in probe.streams:
        [group] = await redis.xinfo_groups(stream)
        assert group["pending"] == 0
        assert group["last-delivered-id"] == (await redis.xinfo_stream(stream))["last-generated-id"]


async def test_a_poison_entry_of_one_stream_is_dead_lettered_there_and_the_other_streams_flow(
    redis_url: str, redis: Redis
) -> None:
    probe = MultiProbe()

    async def poison_101(jobs: list[Job]) -> None:
        if any(job.n == 101 for job in jobs):
            raise ValueError("101 is poison")

    await _groups(redis, probe)
    await publish(redis_url, probe.streams[0], 0, 1, 2)
    await publish(redis_url, probe.streams[1], 100, 101, 102)
    await redis.xadd(probe.streams[2], {"not": "an event"})
    await publish(redis_url, probe.streams[2], 200)
    async with multi_consumer_app(redis_url, probe, "c1", poison_101):
        await wait_until(lambda: _two_dead_and_done(redis, probe), deadline_s=15, what="dead letters, nothing pending")
    assert sorted(probe.done) == [0, 1, 2, 100, 102, 200]
    assert await redis.xlen(f"{probe.streams[0]}:dead") == 0
    [(_, poison)] = await redis.xrange(f"{probe.streams[1]}:dead")
    [(_, unreadable)] = await redis.xrange(f"{probe.streams[2]}:dead")
    assert poison[b"dead:error"].startswith(b"ValueError")
    assert poison[b"dead:stream"] == probe.streams[1].encode()
    assert unreadable[b"dead:error"].startswith(b"ValidationError")
    assert unreadable[b"dead:attempts"] == str(FAST.max_deliveries).encode()


async def _two_dead_and_done(redis: Redis, probe: MultiProbe) -> bool:
    letters = [int(await redis.xlen(f"{stream}:dead")) for stream in probe.streams]
    return letters == [0, 1, 1] and await _nothing_pending(redis, probe)


async def test_each_streams_claimer_takes_over_what_a_killed_consumer_held(redis_url: str, redis: Redis) -> None:
    probe = MultiProbe()
    await _groups(redis, probe)
    await publish(redis_url, probe.streams[1], 1, 2)
    await publish(redis_url, probe.streams[2], 3)
    await redis.xreadgroup(probe.group, "killed-replica", dict.fromkeys(probe.streams, ">"))  # read, never acked
    async with multi_consumer_app(redis_url, probe, "survivor", _ok):
        await wait_until(
            lambda: _nothing_pending(redis, probe), deadline_s=FAST.claim_idle_s + 10, what="claimed and acked"
        )
    assert sorted(probe.done) == [1, 2, 3]


async def test_a_lone_event_is_handled_after_the_linger(redis_url: str, redis: Redis) -> None:
    probe = MultiProbe()
    async with multi_consumer_app(redis_url, probe, "c1", _ok, linger_ms=50):
        await publish(redis_url, probe.streams[2], 7)
        await wait_until(lambda: probe.done == [7], deadline_s=10, what="the lone event handled")
        await wait_until(lambda: _nothing_pending(redis, probe), deadline_s=5, what="acked")
    assert probe.batches == [[7]]


async def test_what_arrives_while_a_small_read_lingers_joins_its_batch(redis_url: str, redis: Redis) -> None:
    probe = MultiProbe()
    policy = DeliveryPolicy(claim_idle_s=30, polling_ms=100)  # no claim while the read lingers
    async with multi_consumer_app(redis_url, probe, "c1", _ok, linger_ms=2000, policy=policy):
        await publish(redis_url, probe.streams[0], 1)
        # read (pending for the consumer) but, lingering, not handled yet: a second event on another stream ...
        await wait_until(lambda: _pending(redis, probe.streams[0], probe.group), deadline_s=10, what="1 read")
        assert probe.batches == []
        await publish(redis_url, probe.streams[1], 2)
        await wait_until(lambda: sorted(probe.done) == [1, 2], deadline_s=10, what="both handled")
    assert probe.batches == [[1, 2]]  # ... is handled with it, in one batch


async def test_after_a_small_batch_the_next_read_rests_so_what_follows_is_one_batch(
    redis_url: str, redis: Redis
) -> None:
    """rest_ms (the dispatcher's status changes): a lone event is handled at once, and the read after its small batch
    waits first, so the events that follow it are handled together (one read, one handling, one ack)."""
    probe = MultiProbe()
    policy = DeliveryPolicy(claim_idle_s=30, polling_ms=100)
    async with multi_consumer_app(redis_url, probe, "c1", _ok, rest_ms=1500, policy=policy):
        await publish(redis_url, probe.streams[0], 1)
        await wait_until(lambda: probe.done == [1], deadline_s=10, what="the lone event handled")
        await publish(redis_url, probe.streams[0], 2)  # two publishes, two round trips: without the rest, the
        await publish(redis_url, probe.streams[1], 3)  # blocking read would wake for the first alone
        await wait_until(lambda: sorted(probe.done) == [1, 2, 3], deadline_s=10, what="all handled")
        await wait_until(lambda: _nothing_pending(redis, probe), deadline_s=10, what="all acked")
    assert probe.batches == [[1], [2, 3]]


async def test_a_full_batch_is_followed_by_the_next_read_at_once(redis_url: str, redis: Redis) -> None:
    """A backlog (a full batch) is read on without resting: with a rest far longer than the deadline, the entries
    behind a full batch are still handled in time."""
    probe = MultiProbe()
    policy = DeliveryPolicy(claim_idle_s=600, polling_ms=100)
    await _groups(redis, probe)
    await publish(redis_url, probe.streams[0], *range(5))  # waiting before the consumer starts: a full first read
    async with multi_consumer_app(redis_url, probe, "c1", _ok, max_records=3, rest_ms=120_000, policy=policy):
        await wait_until(lambda: sorted(probe.done) == [0, 1, 2, 3, 4], deadline_s=10, what="the backlog handled")
    assert probe.batches == [[0, 1, 2], [3, 4]]


def test_a_rest_near_the_claim_idle_time_is_refused() -> None:
    with pytest.raises(ValueError, match="rest_ms"):
        multi_consumer_app("redis://unused", MultiProbe(), "c1", _ok, rest_ms=int(FAST.claim_idle_s * 1000))


async def _pending(redis: Redis, stream: str, group: str) -> bool:
    return int((await redis.xpending(stream, group))["pending"]) == 1


def test_a_linger_near_the_claim_idle_time_is_refused() -> None:
    with pytest.raises(ValueError, match="linger_ms"):
        multi_consumer_app("redis://unused", MultiProbe(), "c1", _ok, linger_ms=int(FAST.claim_idle_s * 1000))


async def test_a_lost_group_of_one_stream_is_recreated_and_every_stream_flows_again(
    redis_url: str, redis: Redis
) -> None:
    probe = MultiProbe()
    app = multi_consumer_app(redis_url, probe, "c1", _ok)
    stop = asyncio.Event()
    running = asyncio.create_task(serve(app, RunSettings(watch_every_s=0.2), stop))
    try:
        await publish(redis_url, probe.streams[0], 1)
        await wait_until(lambda: 1 in probe.done, deadline_s=15, what="first job handled")
        await redis.delete(probe.streams[1])  # its group is gone (a Redis restart without persistence)
        await publish(redis_url, probe.streams[1], 2)  # the stream comes back without any group
        await publish(redis_url, probe.streams[2], 3)
        await wait_until(lambda: {2, 3} <= set(probe.done), deadline_s=30, what="jobs after the group was lost")
        assert not running.done(), "the service exited instead of recovering"
    finally:
        stop.set()
        code = await asyncio.wait_for(running, 30)
    assert code == 0
