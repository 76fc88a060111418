"""The stage histograms and status counters move when sessions run through the real session store handler, on real
PostgreSQL and Redis: once per session, whatever the event order, never for a redelivery; the consumer serves them
(and its groups' stream statistics) over HTTP."""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from faststream.redis import RedisBroker
from prometheus_client import REGISTRY
from psycopg_pool import AsyncConnectionPool

from contracts.endings import EndCode
from contracts.events import (
    AgentJoined,
    AgentReady,
    Event,
    SessionDispatched,
    SessionEndRequested,
    SessionRequested,
)
from services.runtime.metrics_server import MetricsOptions
from services.runtime.publishing import BrokerPublisher
from services.runtime.running import RunSettings, serve
from services.session_store.announcing import StatusAnnouncer
from services.session_store.app import create_app
from services.session_store.expiry import expire_due_sessions
from services.session_store.lifecycle import StageTimes, handle_event
from services.session_store.metrics import SessionMetrics
from services.session_store.repository import PostgresSessionRepository
from services.session_store.settings import SessionStoreSettings
from tests.polling import wait_until

STAGES = {"dispatched": 0.2, "agent_joined": 0.3, "listener_subscribed": 0.5, "ready": 1.0}


def _session(org: str) -> list[Event]:
    """A session's events, its stages 0.2, 0.3, 0.5 and 1.0 s apart (2.0 s from request to ready)."""
    sid, t0 = uuid.uuid4().hex, datetime.now(UTC) - timedelta(seconds=10)
    at = {name: t0 + timedelta(seconds=s) for name, s in (("d", 0.2), ("j", 0.5), ("l", 1.0), ("r", 2.0))}
    room = f"session-{sid}"
    return [
        SessionRequested(
            session_id=sid,
            org_id=org,
            flow_id="flow-1",
            room_name=room,
            greeting="Hi",
            ready_deadline=t0 + timedelta(seconds=30),
            occurred_at=t0,
        ),
        SessionDispatched(session_id=sid, room_name=room, dispatch_id="AD", occurred_at=at["d"]),
        AgentJoined(session_id=sid, room_name=room, job_id="AJ", occurred_at=at["j"]),
        AgentReady(session_id=sid, greeting="Hi", listener_subscribed_at=at["l"], occurred_at=at["r"]),
    ]


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _stage(org: str, stage: str, suffix: str = "count") -> float:
    return _sample(f"agentready_session_stage_seconds_{suffix}", stage=stage, org=org, flow="_other")


async def _run(events: list[Event], pool: AsyncConnectionPool, announcer: StatusAnnouncer) -> None:
    repo, metrics = PostgresSessionRepository(pool), SessionMetrics(max_orgs=100_000)
    for event in events:
        await handle_event(event, repo, announcer, metrics)


async def test_a_session_moves_each_stage_histogram_once(pool: AsyncConnectionPool, announcer: StatusAnnouncer) -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"
    ready_before = _sample("agentready_session_transitions_total", status="ready")
    ended_before = _sample("agentready_sessions_terminal_total", status="ended", code="ended_by_request")
    events = _session(org)
    await _run(events, pool, announcer)

    for stage, seconds in STAGES.items():
        assert _stage(org, stage) == 1, stage
        assert _stage(org, stage, "sum") == pytest.approx(seconds), stage
    assert _sample("agentready_session_time_to_ready_seconds_count", org=org, flow="_other") == 1
    assert _sample("agentready_session_time_to_ready_seconds_sum", org=org, flow="_other") == pytest.approx(2.0)
    assert _sample("agentready_session_transitions_total", status="ready") == ready_before + 1

    await _run(events, pool, announcer)  # every event redelivered: nothing new recorded, nothing observed again
    assert [_stage(org, stage) for stage in STAGES] == [1, 1, 1, 1]
    assert _sample("agentready_session_transitions_total", status="ready") == ready_before + 1

    sid = events[0].session_id
    await _run([SessionEndRequested(session_id=sid, code=EndCode.ENDED_BY_REQUEST)], pool, announcer)
    after = _sample("agentready_sessions_terminal_total", status="ended", code="ended_by_request")
    assert after == ended_before + 1


async def test_events_out_of_order_still_observe_every_interval_once(
    pool: AsyncConnectionPool, announcer: StatusAnnouncer
) -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"
    requested, dispatched, joined, ready = _session(org)
    await _run([ready, joined, dispatched, requested], pool, announcer)  # the request last
    for stage, seconds in STAGES.items():
        assert _stage(org, stage) == 1, stage
        assert _stage(org, stage, "sum") == pytest.approx(seconds), stage
    assert _sample("agentready_session_time_to_ready_seconds_count", org=org, flow="_other") == 1


async def test_an_expiry_counts_as_a_terminal_status(pool: AsyncConnectionPool, announcer: StatusAnnouncer) -> None:
    requested = _session(f"org-{uuid.uuid4().hex[:8]}")[0]
    assert isinstance(requested, SessionRequested)
    late = requested.model_copy(update={"ready_deadline": datetime.now(UTC) - timedelta(seconds=1)})
    metrics = SessionMetrics()
    before = _sample("agentready_sessions_terminal_total", status="expired", code="not_ready_in_time")
    await _run([late], pool, announcer)
    expired = await expire_due_sessions(PostgresSessionRepository(pool), announcer, 100, metrics.status_moves)
    assert expired >= 1  # this session, and any other test's due one
    after = _sample("agentready_sessions_terminal_total", status="expired", code="not_ready_in_time")
    assert after == before + expired


def test_organisations_past_the_bound_share_one_label() -> None:
    org, overflow = f"org-{uuid.uuid4().hex[:8]}", f"org-{uuid.uuid4().hex[:8]}"
    metrics = SessionMetrics(max_orgs=1)
    before = _sample("agentready_session_time_to_ready_seconds_count", org="_other", flow="_other")
    for name in (org, overflow):
        requested, *_, ready = _session(name)
        metrics.stages_recorded(
            StageTimes(name, "f", {}, {"requested_at": requested.occurred_at, "ready_at": ready.occurred_at})
        )
    assert _sample("agentready_session_time_to_ready_seconds_count", org=org, flow="_other") == 1
    after = _sample("agentready_session_time_to_ready_seconds_count", org="_other", flow="_other")
    assert after == before + 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_consumer_serves_its_metrics_and_stream_statistics_over_http(
    store_redis_url: str, database_url: str
) -> None:
    org, port = f"org-{uuid.uuid4().hex[:8]}", _free_port()
    settings = SessionStoreSettings(
        redis_url=store_redis_url, database_url=database_url, consumer_name=f"t-{uuid.uuid4().hex[:8]}"
    )
    stop = asyncio.Event()
    running = asyncio.create_task(
        serve(create_app(settings), RunSettings(), stop, metrics=MetricsOptions("127.0.0.1", port))
    )
    broker = RedisBroker(store_redis_url)
    await broker.connect()
    try:
        for event in _session(org):
            await BrokerPublisher(broker).publish(event)
        series = f'agentready_session_time_to_ready_seconds_count{{flow="_other",org="{org}"}} 1.0'
        text = ""
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:

            async def scraped() -> bool:
                nonlocal text
                try:
                    text = (await http.get("/metrics")).text
                except httpx.TransportError:
                    return False  # not listening yet
                return series in text

            await wait_until(scraped, deadline_s=20, interval_s=0.1, what="the session's time to ready on /metrics")
        assert 'agentready_stream_pending{group="session_store",stream="agentready:session.requested"}' in text
        assert "agentready_stream_stats_up 1.0" in text
        assert 'group="dispatcher"' not in text  # only this service's groups
    finally:
        stop.set()
        assert await asyncio.wait_for(running, timeout=30) == 0
        await broker.stop()
