"""A frontend that listens only on ``agent-status`` (the simulator's room bus) hears ``agent.failed`` from the
dispatcher when no agent is there to say it: a dispatch that failed, re-dispatch that gave up, an expiry."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from contracts.datachannel import AGENT_STATUS_TOPIC, FAILURE_SENTENCES
from contracts.events import SessionRequested
from devstack.livekit_sim import Simulator
from devstack.livekit_sim.faults import Fault
from services.runtime.migrations import apply_migrations
from services.session_store.app import create_app as create_session_store
from services.session_store.migrations import MIGRATIONS
from services.session_store.settings import SessionStoreSettings
from tests.agent.bus_client import BusParticipant, join_bus, participant_token

from .conftest import dispatcher_settings, running_dispatcher
from .fakes import session_request

HEARD_WITHIN_S = 15.0


async def _agent_failed(frontend: BusParticipant) -> dict[str, Any]:
    frame = await frontend.next_frame("data", timeout=HEARD_WITHIN_S, topic=AGENT_STATUS_TOPIC)
    payload: dict[str, Any] = json.loads(BusParticipant.payload(frame))
    return payload


def _assert_for_the_user(payload: dict[str, Any], request: SessionRequested, stage: str, code: str) -> None:
    assert payload["type"] == "agent.failed" and payload["sessionId"] == request.session_id
    assert (payload["stage"], payload["code"]) == (stage, code)
    assert payload["reason"] == FAILURE_SENTENCES[code]  # a sentence, never an exception text or a URL
    assert datetime.fromisoformat(payload["timestamp"]).tzinfo is not None


@asynccontextmanager
async def _frontend(sim: Simulator, room: str) -> AsyncIterator[BusParticipant]:
    """The user's frontend, joined first (its join creates the room, as with LiveKit's auto-create)."""
    async with join_bus(sim.url, participant_token(room, f"user-{uuid.uuid4().hex[:6]}")) as frontend:
        yield frontend


async def test_a_dispatch_that_failed_is_heard_on_agent_status(
    sim: Simulator, dispatcher_redis_url: str, agent_name: str
) -> None:
    request = session_request()
    sim.faults.set(Fault(route="CreateDispatch", status=403, code="permission_denied", msg="no roomAdmin grant"))
    async with (
        _frontend(sim, request.room_name) as frontend,
        running_dispatcher(dispatcher_settings(sim, dispatcher_redis_url, agent_name)) as publish,
    ):
        await publish(request)
        payload = await _agent_failed(frontend)
    _assert_for_the_user(payload, request, "dispatch", "dispatch_failed")
    assert "grant" not in json.dumps(payload)


async def test_a_redispatch_that_gave_up_is_heard_on_agent_status(
    sim: Simulator, dispatcher_redis_url: str, agent_name: str
) -> None:
    # no worker serves the agent name: every job is dropped, and the watchdog gives up once the deadline is near
    request = session_request(ready_in_s=3)
    settings = dispatcher_settings(sim, dispatcher_redis_url, agent_name, dispatch_join_timeout_s=0.3)
    async with _frontend(sim, request.room_name) as frontend, running_dispatcher(settings) as publish:
        await publish(request)
        payload = await _agent_failed(frontend)
    _assert_for_the_user(payload, request, "dispatch", "no_agent_available")
    assert "LIVEKIT_AGENT_NAME" not in json.dumps(payload)


async def test_an_expiry_is_heard_on_agent_status(
    sim: Simulator, dispatcher_redis_url: str, database_url: str, agent_name: str
) -> None:
    store = create_session_store(
        SessionStoreSettings(
            redis_url=dispatcher_redis_url,
            database_url=database_url,
            consumer_name=f"t-{uuid.uuid4().hex[:6]}",
            expiry_interval_s=0.2,
        )
    )
    # The watchdog waits past the deadline, so the session expires before it would give up.
    settings = dispatcher_settings(
        sim, dispatcher_redis_url, agent_name, dispatch_join_timeout_s=600.0, dispatch_join_timeout_min_s=600.0
    )
    request = session_request().model_copy(update={"ready_deadline": datetime.now(UTC) + timedelta(seconds=2)})
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await apply_migrations(conn, "session_store", MIGRATIONS)  # outside dev mode no service migrates at start-up
    async with _frontend(sim, request.room_name) as frontend, running_dispatcher(settings) as publish:
        await store.start()
        try:
            await publish(request)
            payload = await _agent_failed(frontend)
        finally:
            await store.stop()
    _assert_for_the_user(payload, request, "readiness", "not_ready_in_time")
