"""One trace per session: API -> Redis Streams -> dispatcher -> (job metadata) -> session store, in-process on real
Redis and PostgreSQL against the LiveKit simulator; and the agent's job span joining it from the job metadata."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

from faststream import FastStream
from livekit.agents import JobContext
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from devstack.livekit_sim import Simulator
from services.agent.job_trace import traced_job
from services.api.admin import KeyRequest, create_key
from services.api.app import create_app as create_api
from services.api.settings import ApiSettings
from services.dispatcher.app import create_app as create_dispatcher
from services.dispatcher.settings import DispatcherSettings
from services.runtime import tracing
from services.session_store.app import create_app as create_store
from services.session_store.settings import SessionStoreSettings
from tests.api.conftest import http_client
from tests.polling import wait_until
from tests.stack_fixtures import separate_database, with_redis_db

TRACE_DB = 13  # a Redis database of its own: no other test's consumer takes these events


@contextlib.asynccontextmanager
async def started(app: FastStream) -> AsyncIterator[None]:
    await app.start()
    try:
        yield
    finally:
        await app.stop()


def _named(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = [s for s in spans.get_finished_spans() if s.name == name]
    assert len(found) == 1, sorted(s.name for s in spans.get_finished_spans())
    return found[0]


async def test_api_dispatcher_and_session_store_share_the_sessions_trace(
    redis_url: str, database_url: str, sim: Simulator, spans: InMemorySpanExporter
) -> None:
    redis = with_redis_db(redis_url, TRACE_DB)
    agent_name = f"trace-{uuid.uuid4().hex[:8]}"
    consumer = f"trace-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    async with separate_database(database_url) as db:
        api = create_api(ApiSettings(redis_url=redis, database_url=db, dev_mode=True))
        store = create_store(
            SessionStoreSettings(redis_url=redis, database_url=db, dev_mode=True, consumer_name=consumer)
        )
        dispatcher = create_dispatcher(
            DispatcherSettings(
                redis_url=redis, livekit_url=sim.url, dev_mode=True, livekit_agent_name=agent_name,
                consumer_name=consumer, dispatch_join_timeout_s=30.0,
            )
        )  # fmt: skip
        async with api.router.lifespan_context(api), started(store), started(dispatcher):
            key, _org = await create_key(db, f"org-{uuid.uuid4().hex[:8]}", request=KeyRequest())
            async with http_client(api, key) as client:
                flow = await client.post("/api/flows", json={"name": "traced", "greeting": "Hi"})
                created = await client.post(f"/api/flows/{flow.json()['id']}/sessions")
                assert created.status_code == 202, created.text
                session_id = created.json()["sessionId"]

                async def dispatched() -> bool:
                    got = await client.get(f"/api/sessions/{session_id}")
                    return got.json()["stages"]["dispatched"] is not None

                await wait_until(dispatched, deadline_s=15.0, what="the session store recorded the dispatch")
            await wait_until(
                lambda: len([s for s in spans.get_finished_spans() if s.kind is SpanKind.CONSUMER]) >= 3,
                deadline_s=5.0,
                what="the consumers' spans ended",
            )
            room = sim.state.rooms[f"session-{session_id}"]
            (dispatch,) = [d for d in room.dispatches.values() if d.agent_name == agent_name]

    request = _named(spans, "session.request")
    dispatcher_span = _named(spans, "dispatcher process session.requested")
    stored_request = _named(spans, "session_store process session.requested")
    stored_dispatch = _named(spans, "session_store process session.dispatched")
    trace_id = request.context.trace_id
    assert {s.context.trace_id for s in (dispatcher_span, stored_request, stored_dispatch)} == {trace_id}
    assert request.attributes is not None and request.attributes["agentready.session_id"] == session_id
    assert dispatcher_span.parent is not None and dispatcher_span.parent.span_id == request.context.span_id
    assert stored_request.parent is not None and stored_request.parent.span_id == request.context.span_id
    assert stored_dispatch.parent is not None and stored_dispatch.parent.span_id == dispatcher_span.context.span_id
    calls = [s for s in spans.get_finished_spans() if s.name == "livekit server api"]
    assert calls and all(c.parent and c.parent.span_id == dispatcher_span.context.span_id for c in calls)
    assert any(c.attributes and str(c.attributes["livekit.call"]).startswith("create room") for c in calls)
    # the dispatch's job metadata carries the dispatcher's span: the agent's spans are its children
    carried = json.loads(dispatch.metadata)["traceparent"].split("-")
    assert carried[1:3] == [f"{trace_id:032x}", f"{dispatcher_span.context.span_id:016x}"]


async def test_the_agents_job_span_is_a_child_of_the_traceparent_in_its_metadata(
    spans: InMemorySpanExporter,
) -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    seen: list[str] = []

    async def job(_: Any) -> None:
        with tracing.span("agent.stage connect"):
            seen.append(tracing.current_traceparent())

    ctx = SimpleNamespace(
        job=SimpleNamespace(
            id="job-1", room=SimpleNamespace(name="room-1"), metadata=json.dumps({"traceparent": parent})
        )
    )
    await traced_job(job, cast(JobContext, ctx))
    agent_job = _named(spans, "agent.job")
    stage = _named(spans, "agent.stage connect")
    assert f"{agent_job.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert agent_job.parent is not None and f"{agent_job.parent.span_id:016x}" == "b7ad6b7169203331"
    assert stage.parent is not None and stage.parent.span_id == agent_job.context.span_id
    assert seen[0].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"  # what the job publishes continues the trace
