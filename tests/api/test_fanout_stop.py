"""services.api.fanout.StatusFanout.stop: the SSE fan-out's read loop ends at shutdown even when its cancellation is
lost (Python 3.11's asyncio.wait_for, under every redis-py command, can drop one: CPython gh-86296), on real Redis."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from services.api.fanout import StatusFanout


async def test_stop_ends_the_read_loop_without_a_cancellation(redis: Redis) -> None:
    fanout = StatusFanout(redis, queue_size=8, block_ms=200)
    task = asyncio.create_task(fanout.run(await fanout.start_id()))
    done, _ = await asyncio.wait({task}, timeout=0.5)
    assert not done  # reading: it runs until told otherwise
    fanout.stop()  # no task.cancel(): as if the cancellation had been lost
    done, _ = await asyncio.wait({task}, timeout=5.0)  # its current read blocks 200 ms at most
    assert done, "the fan-out still reads after stop()"
    assert not task.cancelled() and task.exception() is None


async def test_a_stopped_loop_does_not_retry_a_read_that_failed(redis_url: str) -> None:
    """At shutdown the API closes its Redis client under the read: the loop ends instead of logging and retrying."""
    client = Redis.from_url(redis_url)
    fanout = StatusFanout(client, queue_size=8, block_ms=5000)
    task = asyncio.create_task(fanout.run(await fanout.start_id(), retry_s=30.0))
    done, _ = await asyncio.wait({task}, timeout=0.3)
    assert not done
    fanout.stop()
    await client.connection_pool.disconnect()  # the blocked read fails now, well before its 5 s block ends
    done, _ = await asyncio.wait({task}, timeout=3.0)  # not 30 s of retry wait
    await client.aclose()
    assert done and task.exception() is None
