"""The dispatcher app over real Redis against the in-process LiveKit simulator (real livekit-api client).

These tests use Redis databases of their own (not 0), so the streams they fill are not a backlog for
other tests' consumers (the end-to-end stack's session store, for one) and theirs are not ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest
import structlog
from faststream.redis import RedisBroker
from faststream.redis.parser import BinaryMessageFormatV1
from livekit import api
from pydantic import BaseModel
from redis.asyncio import Redis

from contracts.events import Event
from devstack.livekit_sim import Simulator
from services.dispatcher.app import create_app
from services.dispatcher.settings import DispatcherSettings
from services.runtime.publishing import BrokerPublisher
from tests.dispatcher.counting_redis import CountingRedis
from tests.polling import wait_until

M = TypeVar("M", bound=BaseModel)
Publish = Callable[[Event], Awaitable[None]]

DISPATCHER_DB = 11
BURST_DB = 12


def with_db(url: str, db: int) -> str:
    """``url`` pointing at Redis database ``db``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def dispatcher_redis_url(redis_url: str) -> str:
    """The test Redis server, database 11."""
    return with_db(redis_url, DISPATCHER_DB)


@pytest.fixture
def sim_assign_timeout() -> float:
    """Availability answers are awaited 1 s at most here (the ``sim`` fixture of tests/conftest.py reads it)."""
    return 1.0


@pytest.fixture
def agent_name() -> str:
    """A unique agent name per test: it also namespaces the dispatcher's ledger keys."""
    return f"agentready-test-{uuid.uuid4().hex[:8]}"


def dispatcher_settings(sim: Simulator, redis_url: str, agent_name: str, **overrides: Any) -> DispatcherSettings:
    """Settings for a test dispatcher: fast retries, a short join timeout, a fast watchdog."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "livekit_url": sim.url,
        "dev_mode": True,
        "livekit_agent_name": agent_name,
        "retry_initial_s": 0.01,
        "dispatch_join_timeout_s": 1.0,
        "dispatch_started_job_timeout_s": 1.0,  # a job a worker took waits as long as any other (the join timeout)
        "watchdog_scan_interval_s": 0.1,
        "consumer_name": f"test-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        **overrides,
    }
    return DispatcherSettings(**values)


STOP_BOUND_S = 20.0


@contextlib.asynccontextmanager
async def running_dispatcher(settings: DispatcherSettings) -> AsyncIterator[Publish]:
    """Run a dispatcher app; yield a function that publishes an event to the streams it reads."""
    app = create_app(settings)
    broker = RedisBroker(settings.redis_url)
    await broker.connect()
    await app.start()
    try:
        yield BrokerPublisher(broker).publish
    finally:
        try:  # bounded like services.runtime.running.run_app bounds it in production
            await asyncio.wait_for(app.stop(), timeout=STOP_BOUND_S)
        except TimeoutError:
            warnings.warn(f"dispatcher app.stop() took over {STOP_BOUND_S} s", RuntimeWarning, stacklevel=1)
        await broker.stop()


@pytest.fixture
async def running(sim: Simulator, dispatcher_redis_url: str, agent_name: str) -> AsyncIterator[Publish]:
    """A dispatcher against ``sim`` with the test settings."""
    async with running_dispatcher(dispatcher_settings(sim, dispatcher_redis_url, agent_name)) as publish:
        yield publish


async def events_on(redis: Redis, stream: str, model: type[M]) -> list[M]:
    """Every event on ``stream``, parsed as ``model``."""
    found = []
    for _, fields in await redis.xrange(stream):
        data, _ = BinaryMessageFormatV1.parse(fields[b"__data__"])
        found.append(model.model_validate_json(data))
    return found


async def wait_for_events(
    redis_url: str,
    stream: str,
    model: type[M],
    predicate: Callable[[list[M]], bool],
    timeout: float = 10.0,
) -> list[M]:
    """Poll ``stream`` until ``predicate(events)`` holds; return the events."""
    redis = Redis.from_url(redis_url)
    found: list[M] = []

    async def holds() -> bool:
        found[:] = await events_on(redis, stream, model)
        return predicate(found)

    try:
        await wait_until(holds, deadline_s=timeout, what=f"{stream}: the expected events", interval_s=0.05)
        return found
    finally:
        await redis.aclose()


async def wait_consumed(redis_url: str, stream: str, group: str = "dispatcher", timeout: float = 10.0) -> None:
    """Wait until ``group`` has read and acked everything on ``stream``."""
    redis = Redis.from_url(redis_url)

    async def consumed() -> bool:
        last = (await redis.xinfo_stream(stream))["last-generated-id"]
        groups = {g["name"].decode(): g for g in await redis.xinfo_groups(stream)}
        pending = (await redis.xpending(stream, group))["pending"]
        return bool(group in groups and groups[group]["last-delivered-id"] == last and pending == 0)

    try:
        await wait_until(consumed, deadline_s=timeout, what=f"{group} consumed all of {stream}")
    finally:
        await redis.aclose()


def our_dispatches(sim: Simulator, room: str, agent_name: str) -> list[str]:
    """Ids of the room's dispatches of ``agent_name``, as the simulator holds them."""
    target = sim.state.rooms.get(room)
    return [d.id for d in target.dispatches.values() if d.agent_name == agent_name] if target else []


async def listed_dispatches(sim: Simulator, room: str, agent_name: str) -> list[api.AgentDispatch]:
    """The room's dispatches of ``agent_name`` through the real client (ListDispatch)."""
    async with api.LiveKitAPI(sim.url, "devkey", "secret") as lk:
        return [d for d in await lk.agent_dispatch.list_dispatch(room) if d.agent_name == agent_name]


@pytest.fixture
async def counting(redis_url: str) -> AsyncIterator[CountingRedis]:
    """A real client on the test's Redis that counts the commands it sends."""
    client = CountingRedis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def quiet_logs() -> Iterator[None]:
    """Info logs of thousands of sessions cost CPU a burst test is not about: warnings and errors only."""
    saved = structlog.get_config()
    access = logging.getLogger("faststream.access.redis")
    level = access.level
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    access.setLevel(logging.WARNING)
    yield
    structlog.configure(**saved)
    access.setLevel(level)


@pytest.fixture
async def burst_redis_url(redis_url: str) -> AsyncIterator[str]:
    """A Redis database for one burst test alone, emptied afterwards: its requests must not become another
    consumer's backlog."""
    url = with_db(redis_url, BURST_DB)
    yield url
    redis = Redis.from_url(url)
    await redis.flushdb()
    await redis.aclose()
