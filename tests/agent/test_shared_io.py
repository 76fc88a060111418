"""The worker process's shared clients: jobs running in threads of their own (each with its own event loop, as the
thread executor runs them) publish through one Redis connection and call flow init over one keep-alive HTTP
connection, instead of opening (and closing) their own per job."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest
from aiohttp import web
from redis.asyncio import Redis

from contracts.events import AgentJoined
from contracts.streams import AGENT_JOINED
from services.agent.flow_client import FlowConfig, FlowInitPolicy
from services.agent.metadata import SessionMetadata
from services.agent.shared_io import SharedIO, close_shared_io, shared_io
from tests.agent.stream_events import event_for

POLICY = FlowInitPolicy(attempts=2, max_seconds=2.0, initial_backoff_s=0.01)


def in_job_thread(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` the way a thread-executor job runs: in another thread, on an event loop of its own."""
    return asyncio.to_thread(asyncio.run, coro)


@pytest.fixture
async def flow_api() -> AsyncIterator[tuple[str, list[int]]]:
    """An API stub answering flow init; the list gets the client's port of every request."""
    ports: list[int] = []

    async def flow_init(request: web.Request) -> web.Response:
        assert request.transport is not None
        ports.append(request.transport.get_extra_info("peername")[1])
        return web.json_response({"greeting": f"Hi {request.match_info['sid']}", "definition": {}})

    app = web.Application()
    app.router.add_post("/internal/sessions/{sid}/flow-init", flow_init)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", ports
    finally:
        await runner.cleanup()


@pytest.fixture
async def clients(redis_url: str, flow_api: tuple[str, list[int]]) -> AsyncIterator[SharedIO]:
    io = shared_io(redis_url, api_url=flow_api[0], http_timeout_s=2.0, flow_policy=POLICY)
    try:
        yield io
    finally:
        await close_shared_io()


def session(sid: str) -> SessionMetadata:
    fields = {"sessionId": sid, "flowId": "f", "orgId": "o", "roomName": f"room-{sid}", "greeting": "meta"}
    return SessionMetadata.model_validate({**fields, "credential": "c"})


async def test_jobs_in_their_own_threads_publish_through_one_redis_connection(
    clients: SharedIO, redis: Redis, redis_url: str, flow_api: tuple[str, list[int]]
) -> None:
    connections_before = (await redis.info("stats"))["total_connections_received"]
    sids = [f"s-{uuid.uuid4().hex}" for _ in range(3)]
    for sid in sids:  # one after another, as jobs that do not overlap
        event = AgentJoined(session_id=sid, room_name=f"room-{sid}", job_id=f"job-{sid}")
        await in_job_thread(clients.publisher.publish(event))
    for sid in sids:
        assert (await event_for(redis, AGENT_JOINED, sid, timeout=5.0))["job_id"] == f"job-{sid}"
    assert (await redis.info("stats"))["total_connections_received"] - connections_before == 1
    same = shared_io(redis_url, api_url=flow_api[0], http_timeout_s=2.0, flow_policy=POLICY)
    assert same is clients  # every job of the process gets the same clients


async def test_flow_init_of_jobs_in_their_own_threads_reuses_one_http_connection(
    clients: SharedIO, flow_api: tuple[str, list[int]]
) -> None:
    sids = [f"s-{uuid.uuid4().hex}" for _ in range(3)]
    flows: list[FlowConfig] = [await in_job_thread(clients.initialise_flow(session(sid))) for sid in sids]
    assert [flow.greeting for flow in flows] == [f"Hi {sid}" for sid in sids]
    assert len(flow_api[1]) == 3 and len(set(flow_api[1])) == 1  # keep-alive: one client port for all three


async def test_closed_clients_refuse_calls_and_a_new_job_gets_new_ones(
    clients: SharedIO, redis_url: str, redis: Redis, flow_api: tuple[str, list[int]]
) -> None:
    sid = f"s-{uuid.uuid4().hex}"
    await close_shared_io()
    assert clients.closed
    with pytest.raises(RuntimeError, match="closed"):
        await clients.publisher.publish(AgentJoined(session_id=sid, room_name="r", job_id="j"))
    fresh = shared_io(redis_url, api_url=flow_api[0], http_timeout_s=2.0, flow_policy=POLICY)
    assert fresh is not clients
    await in_job_thread(fresh.publisher.publish(AgentJoined(session_id=sid, room_name="r", job_id="j")))
    assert (await event_for(redis, AGENT_JOINED, sid, timeout=5.0))["session_id"] == sid
