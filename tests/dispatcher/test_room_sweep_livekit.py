"""The room sweep on real servers: a ready session whose room LiveKit closed is ended by the session store
(dispatcher and session store on real Redis and PostgreSQL, the simulator as LiveKit)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from livekit import api
from psycopg_pool import AsyncConnectionPool

from contracts.events import AgentJoined, AgentReady
from devstack.livekit_sim import Simulator
from services.runtime.migrations import apply_migrations
from services.session_store.app import create_app as create_session_store
from services.session_store.migrations import MIGRATIONS
from services.session_store.repository import PostgresSessionRepository
from services.session_store.settings import SessionStoreSettings
from tests.polling import wait_until

from .conftest import dispatcher_settings, running_dispatcher
from .fakes import session_request


async def _row_when(
    repo: PostgresSessionRepository, session_id: str, status: str, timeout: float = 15.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    row = None
    while time.monotonic() < deadline:
        row = await repo.get(session_id)
        if row is not None and row["status"] == status:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"session {session_id} not {status} within {timeout} s: {row}")


async def test_a_ready_session_whose_room_closed_is_ended(
    sim: Simulator, dispatcher_redis_url: str, database_url: str, agent_name: str
) -> None:
    store = create_session_store(
        SessionStoreSettings(
            redis_url=dispatcher_redis_url, database_url=database_url, consumer_name=f"t-{uuid.uuid4().hex[:6]}"
        )
    )
    settings = dispatcher_settings(
        sim,
        dispatcher_redis_url,
        agent_name,
        dispatch_join_timeout_s=600.0,  # the agent's events are published by hand: no re-dispatch
        dispatch_join_timeout_min_s=600.0,
        room_sweep_grace_s=0.5,
        room_sweep_interval_s=0.2,
    )
    request = session_request()
    sid, room = request.session_id, request.room_name
    ids = {"session_id": sid, "correlation_id": request.correlation_id}
    async with (
        AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as pool,
        running_dispatcher(settings) as publish,
    ):
        async with pool.connection() as conn:  # outside dev mode the services do not migrate at start-up
            await apply_migrations(conn, "session_store", MIGRATIONS)
        await store.start()
        try:
            repo = PostgresSessionRepository(pool)
            await publish(request)
            await _row_when(repo, sid, "dispatched")
            await publish(AgentJoined(**ids, room_name=room, job_id="AJ_test"))  # as the agent says it
            await publish(AgentReady(**ids, greeting="Hello"))
            await _row_when(repo, sid, "ready")
            # Past the grace period the open room is looked up (twice here), and the session is kept.
            await wait_until(
                lambda: sim.state.counters["twirp_requests.ListRooms"] >= 2, deadline_s=10, what="rooms looked up"
            )
            assert (await _row_when(repo, sid, "ready"))["status"] == "ready"
            async with api.LiveKitAPI(sim.url, "devkey", "secret") as lk:
                await lk.room.delete_room(api.DeleteRoomRequest(room=room))  # LiveKit closes the room
            ended = await _row_when(repo, sid, "ended", timeout=10.0)
        finally:
            await store.stop()
    assert ended["end_code"] == "room_closed" and "room scan" in str(ended["reason"])
