"""run_app's supervision on real Redis: lost groups re-created, pending released on shutdown."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from services.runtime.delivery import DeliveryPolicy
from services.runtime.running import RunSettings, release_pending, serve
from tests.delivery.harness import FAST, Job, Probe, consumer_app, publish
from tests.polling import wait_until


async def _ok(_: Job) -> None:
    return None


async def test_a_lost_group_is_recreated_and_consumption_goes_on(redis_url: str, redis: Redis) -> None:
    probe = Probe()
    app = consumer_app(redis_url, probe, "c1", _ok)
    stop = asyncio.Event()
    running = asyncio.create_task(serve(app, RunSettings(watch_every_s=0.2), stop))
    try:
        await publish(redis_url, probe.stream, 1)
        await wait_until(lambda: _seen(probe, 1), deadline_s=5, what="first job handled")
        # what a Redis restart without persistence does to the group (the stream is re-created by producers)
        await redis.delete(probe.stream)
        await publish(redis_url, probe.stream, 2)  # XADD re-creates the stream, without any group
        bound = 10.0
        took = await wait_until(
            lambda: _seen(probe, 2), deadline_s=bound, what="job published after the group was lost"
        )
        assert not running.done(), "the service exited instead of recovering"
        print(f"group re-created and job handled {took:.1f} s after the loss (bound {bound} s)")
    finally:
        stop.set()
        code = await asyncio.wait_for(running, 30)
    assert code == 0


async def _seen(probe: Probe, n: int) -> bool:
    return n in probe.calls


async def test_stop_releases_what_this_replica_still_holds(redis_url: str, redis: Redis) -> None:
    probe = Probe()
    await redis.xgroup_create(probe.stream, probe.group, id="0", mkstream=True)
    await publish(redis_url, probe.stream, 1, 2, 3)
    await redis.xreadgroup(probe.group, "leaving", {probe.stream: ">"})
    released = await release_pending(redis, probe.stream, probe.group, "leaving", FAST.claim_idle_ms)
    assert released == 3
    # at once claimable by any other replica, no waiting for the idle time
    _, claimed, *_ = await redis.xautoclaim(probe.stream, probe.group, "other", FAST.claim_idle_ms, "0-0")
    assert len(claimed) == 3


async def test_a_replica_restarted_under_the_same_name_takes_back_its_predecessors_messages_at_once(
    redis_url: str, redis: Redis
) -> None:
    probe = Probe()
    await redis.xgroup_create(probe.stream, probe.group, id="0", mkstream=True)
    await publish(redis_url, probe.stream, 1, 2, 3)
    # the predecessor read them under the name and was killed (-9) before acking
    await redis.xreadgroup(probe.group, "replica-1", {probe.stream: ">"})
    # claim idle far beyond the deadline below: only the start-up release can make them claimable in time
    slow_claims = DeliveryPolicy(max_deliveries=3, claim_idle_s=120, polling_ms=100)
    app = consumer_app(redis_url, probe, "replica-1", _ok, policy=slow_claims)
    stop = asyncio.Event()
    running = asyncio.create_task(serve(app, RunSettings(watch_every_s=0.2), stop))
    try:
        took = await wait_until(
            lambda: sorted(probe.calls) == [1, 2, 3], deadline_s=10, what="the predecessor's messages handled"
        )
        print(f"inherited messages handled {took:.1f} s after the restart (claim idle {slow_claims.claim_idle_s} s)")
    finally:
        stop.set()
        code = await asyncio.wait_for(running, 30)
    assert code == 0
    assert (await redis.xpending(probe.stream, probe.group))["pending"] == 0


async def test_a_long_blocking_read_delays_neither_a_message_nor_the_stop(redis_url: str) -> None:
    """Readers block for up to ``polling_ms`` (few empty reads when idle): a message published meanwhile is handled
    at once, and stopping cancels the blocked reads instead of waiting for them to time out."""
    longest = DeliveryPolicy(polling_ms=8000, claim_idle_s=30)
    probe = Probe()
    app = consumer_app(redis_url, probe, "c1", _ok, policy=longest)
    stop = asyncio.Event()
    running = asyncio.create_task(serve(app, RunSettings(), stop))
    try:
        await asyncio.sleep(0.5)  # the reader is blocked in XREADGROUP now
        await publish(redis_url, probe.stream, 7)
        await wait_until(lambda: _seen(probe, 7), deadline_s=4, what="the job handled while the read blocks 8 s")
    finally:
        stop.set()
        code = await asyncio.wait_for(running, 5)  # well before the 8 s blocks would end on their own
    assert code == 0


def test_a_read_may_not_block_past_the_redis_socket_timeout() -> None:
    """A read blocking past the connection's socket timeout would fail as a dead connection each time it is idle."""
    with pytest.raises(ValidationError, match="polling_ms"):
        DeliveryPolicy(polling_ms=10_000)
