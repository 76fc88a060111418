"""The dispatcher's group on a stream it no longer reads (agent.joined) is retired on real Redis, but only once no
consumer of it was seen for a grace period, and again later: an older replica still reading it during a rolling
deploy keeps reading (before, its reads failed with NOGROUP and its supervisor re-read the whole stream from 0)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from contracts.streams import AGENT_JOINED, Groups
from devstack.livekit_sim import Simulator
from services.dispatcher.app import RETIRED_STREAMS
from services.dispatcher.group_retirement import RetirementPolicy, retire_forever, retire_idle_group, retire_once
from services.runtime.running import RunSettings, serve
from services.runtime.streams import ensure_groups
from tests.delivery.harness import BatchProbe, Job, batch_consumer_app, publish
from tests.dispatcher.conftest import dispatcher_settings, running_dispatcher
from tests.polling import wait_until

DEPLOY_GRACE_S = 900.0  # the default: far longer than any test


def _stream() -> str:
    return f"test:retire:{uuid.uuid4().hex[:10]}"


async def _groups(redis: Redis, stream: str) -> set[str]:
    try:
        return {g["name"].decode() for g in await redis.xinfo_groups(stream)}
    except ResponseError:  # no such stream: no groups
        return set()


async def _ok(_: list[Job]) -> None:
    return None


async def test_an_older_replica_still_reading_the_group_keeps_it_and_reads_on(redis_url: str, redis: Redis) -> None:
    """A replica of the previous version (a reader and a claimer of the group under run_app) during a rolling
    deploy: the group stays, and what it already handled is not handled again."""
    old = BatchProbe(stream=_stream(), group=Groups.DISPATCHER)
    stop = asyncio.Event()
    running = asyncio.create_task(
        serve(batch_consumer_app(redis_url, old, "dispatcher-old", _ok), RunSettings(watch_every_s=0.2), stop)
    )
    try:
        await publish(redis_url, old.stream, 1, 2)
        await wait_until(lambda: sorted(old.done) == [1, 2], deadline_s=10, what="the old replica handled 1, 2")
        policy = RetirementPolicy((old.stream,), Groups.DISPATCHER, DEPLOY_GRACE_S, every_s=60)
        retired = await retire_once(redis, policy)  # a new replica starts meanwhile
        await publish(redis_url, old.stream, 3)
        await wait_until(lambda: 3 in old.done, deadline_s=10, what="the old replica handled 3")
        assert not running.done()
    finally:
        stop.set()
        code = await asyncio.wait_for(running, 30)
    assert code == 0
    assert old.done == [1, 2, 3]  # before: NOGROUP, the group re-created from 0, and 1, 2 handled again
    assert retired == [] and Groups.DISPATCHER in await _groups(redis, old.stream)


async def test_a_group_whose_consumers_were_all_idle_past_the_grace_is_destroyed(redis: Redis) -> None:
    stream = _stream()
    await ensure_groups(redis, {Groups.DISPATCHER: (stream,), Groups.SESSION_STORE: (stream,)})
    await redis.xadd(stream, {"n": "1"})
    await redis.xreadgroup(Groups.DISPATCHER, "dispatcher-old", {stream: ">"})  # seen just now
    assert not await retire_idle_group(redis, stream, Groups.DISPATCHER, idle_s=60)
    assert Groups.DISPATCHER in await _groups(redis, stream)

    await wait_until(
        lambda: retire_idle_group(redis, stream, Groups.DISPATCHER, idle_s=0.2),
        deadline_s=10,
        what="the group retired once its consumer was idle past the grace",
    )
    assert await _groups(redis, stream) == {Groups.SESSION_STORE}


async def test_the_group_of_a_stream_no_longer_read_is_removed(redis_url: str) -> None:
    """agent.joined keeps no dispatcher group without consumers (it would hold back the stream's trimming); other
    groups stay."""
    redis = Redis.from_url(redis_url)
    policy = RetirementPolicy(RETIRED_STREAMS, Groups.DISPATCHER, DEPLOY_GRACE_S, every_s=60)
    try:
        await ensure_groups(redis, {Groups.DISPATCHER: (AGENT_JOINED,), Groups.SESSION_STORE: (AGENT_JOINED,)})
        await retire_once(redis, policy)
        await retire_once(redis, policy)  # nothing left to retire: fine
        groups = {g["name"].decode() for g in await redis.xinfo_groups(AGENT_JOINED)}
    finally:
        await redis.aclose()
    assert Groups.DISPATCHER not in groups and Groups.SESSION_STORE in groups


async def test_retirement_looks_again_later(redis: Redis) -> None:
    """An older replica of any service re-creates every group of its contracts at start-up: it goes again."""
    stream = _stream()
    await ensure_groups(redis, {Groups.DISPATCHER: (stream,)})
    policy = RetirementPolicy((stream,), Groups.DISPATCHER, DEPLOY_GRACE_S, every_s=0.05)
    retiring = asyncio.create_task(retire_forever(redis, policy))
    try:
        await wait_until(lambda: _gone(redis, stream), deadline_s=10, what="retired at start")
        await ensure_groups(redis, {Groups.DISPATCHER: (stream,)})
        await wait_until(lambda: _gone(redis, stream), deadline_s=10, what="retired again later")
    finally:
        retiring.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await retiring


async def test_the_running_dispatcher_retires_a_group_created_after_its_start(
    sim: Simulator, dispatcher_redis_url: str, agent_name: str
) -> None:
    settings = dispatcher_settings(sim, dispatcher_redis_url, agent_name, retire_group_every_s=0.1)
    redis = Redis.from_url(dispatcher_redis_url)
    try:
        async with running_dispatcher(settings):
            # an older replica starting during the deploy creates it again (from id 0, no consumer yet)
            await ensure_groups(redis, {Groups.DISPATCHER: (AGENT_JOINED,)})
            await wait_until(lambda: _gone(redis, AGENT_JOINED), deadline_s=10, what="retired while running")
    finally:
        await redis.aclose()


async def _gone(redis: Redis, stream: str) -> bool:
    return Groups.DISPATCHER not in await _groups(redis, stream)
