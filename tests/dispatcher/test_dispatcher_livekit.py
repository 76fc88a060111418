"""The dispatcher app over real Redis, talking to the LiveKit simulator with the real livekit-api client."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from faststream.redis import RedisBroker
from faststream.redis.parser import BinaryMessageFormatV1
from livekit import api
from redis.asyncio import Redis

from contracts.events import Event, SessionDispatched, SessionDispatchFailed, SessionRequested
from contracts.streams import SESSION_DISPATCH_FAILED, SESSION_DISPATCHED
from devstack.livekit_sim import Simulator, SimulatorConfig, run_simulator
from devstack.livekit_sim.faults import Fault
from services.dispatcher.app import create_app
from services.dispatcher.settings import DispatcherSettings
from services.runtime.publishing import BrokerPublisher

AGENT = "agentready-test"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with run_simulator(config=SimulatorConfig(assign_timeout=1.0)) as simulator:
        yield simulator


@pytest.fixture
async def running(sim: Simulator, redis_url: str) -> AsyncIterator[Callable[[Event], Awaitable[None]]]:
    """A dispatcher app against the simulator; yields a function that publishes an event to it."""
    settings = DispatcherSettings(
        redis_url=redis_url,
        livekit_url=sim.url,
        dev_mode=True,
        livekit_agent_name=AGENT,
        retry_initial_s=0.01,
        consumer_name=f"test-{os.getpid()}-{uuid.uuid4().hex[:6]}",
    )
    app = create_app(settings)
    broker = RedisBroker(redis_url)
    await broker.connect()
    await app.start()
    try:
        yield BrokerPublisher(broker).publish
    finally:
        await app.stop()
        await broker.stop()


def _request() -> SessionRequested:
    sid = uuid.uuid4().hex
    return SessionRequested(
        session_id=sid,
        org_id="org",
        flow_id="flow",
        room_name=f"session-{sid}",
        greeting="Hello",
        ready_deadline=datetime.now(UTC) + timedelta(seconds=30),
    )


async def _wait_for(
    redis_url: str, stream: str, session_id: str, model: type[Any], timeout: float = 10, count: int = 1
) -> Any:
    """Wait until ``count`` events of the session are on ``stream``; return the first."""
    redis = Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            found = []
            for _, fields in await redis.xrange(stream):
                data, _ = BinaryMessageFormatV1.parse(fields[b"__data__"])
                event = model.model_validate_json(data)
                if event.session_id == session_id:
                    found.append(event)
            if len(found) >= count:
                return found[0]
            await asyncio.sleep(0.05)
    finally:
        await redis.aclose()
    raise AssertionError(f"fewer than {count} {model.__name__} for {session_id} on {stream} within {timeout} s")


async def _our_dispatches(sim: Simulator, room: str) -> list[api.AgentDispatch]:
    async with api.LiveKitAPI(sim.url, "devkey", "secret") as lk:
        return [d for d in await lk.agent_dispatch.list_dispatch(room) if d.agent_name == AGENT]


async def test_request_creates_room_and_one_dispatch(sim: Simulator, running: Any, redis_url: str) -> None:
    request = _request()
    await running(request)
    await running(request)  # duplicate delivery
    # Both deliveries are handled concurrently; both answer with the same, single dispatch.
    first = await _wait_for(redis_url, SESSION_DISPATCHED, request.session_id, SessionDispatched, count=2)
    dispatches = await _our_dispatches(sim, request.room_name)
    assert [d.id for d in dispatches] == [first.dispatch_id]
    assert '"greeting":"Hello"' in dispatches[0].metadata


async def test_unavailable_twice_then_success_gives_one_dispatch(sim: Simulator, running: Any, redis_url: str) -> None:
    sim.faults.set(Fault(route="CreateDispatch", status=503, code="unavailable", count=2))
    request = _request()
    await running(request)
    await _wait_for(redis_url, SESSION_DISPATCHED, request.session_id, SessionDispatched)
    assert len(await _our_dispatches(sim, request.room_name)) == 1


async def test_refused_credentials_fail_at_once(sim: Simulator, running: Any, redis_url: str) -> None:
    sim.faults.set(Fault(route="CreateRoom", status=401, code="unauthenticated", msg="permissions denied"))
    request = _request()
    await running(request)
    failed = await _wait_for(redis_url, SESSION_DISPATCH_FAILED, request.session_id, SessionDispatchFailed)
    assert "401" in failed.reason and "LIVEKIT_API_KEY" in failed.reason
