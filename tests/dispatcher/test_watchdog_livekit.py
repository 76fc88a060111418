"""The dispatch watchdog against the simulator's real server behaviours, with real livekit-agents workers:
a job dropped for want of a worker, a worker killed mid-job, no worker ever."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from faststream.redis import RedisBroker
from livekit import api
from livekit.agents import AgentServer, JobContext
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from contracts.events import SessionDispatched, SessionDispatchFailed, SessionEndRequested, SessionStatusChanged
from contracts.job import AgentJobMetadata
from contracts.streams import SESSION_DISPATCH_FAILED, SESSION_DISPATCHED
from devstack.livekit_sim import Simulator
from services.agent.settings import AgentSettings
from services.agent.worker import running_worker
from services.dispatcher.ledger import RedisSessionLedger
from services.runtime.migrations import apply_migrations
from services.runtime.publishing import BrokerPublisher
from services.session_store.app import create_app as create_session_store
from services.session_store.migrations import MIGRATIONS
from services.session_store.repository import PostgresSessionRepository
from services.session_store.settings import SessionStoreSettings
from tests.agent.worker_settings import simulator_agent_settings
from tests.devstack.livekit_sim.agent_server import agent_server_for, registered
from tests.polling import wait_until

from .conftest import dispatcher_settings, our_dispatches, running_dispatcher, wait_for_events
from .fakes import session_request


def _attempts(events: list[SessionDispatched], session_id: str) -> list[int]:
    return sorted(e.attempt for e in events if e.session_id == session_id)


async def test_no_worker_at_first_then_the_watchdog_redispatches_and_the_session_gets_ready(
    sim: Simulator, dispatcher_redis_url: str, database_url: str, agent_name: str
) -> None:
    store = create_session_store(
        SessionStoreSettings(
            redis_url=dispatcher_redis_url, database_url=database_url, consumer_name=f"t-{uuid.uuid4().hex[:6]}"
        )
    )
    # 3 s: room for a slow job start on a busy machine; the first job is dropped (no worker) anyway.
    settings = dispatcher_settings(
        sim, dispatcher_redis_url, agent_name, dispatch_join_timeout_s=3.0, dispatch_max_attempts=10
    )
    request = session_request()
    sid, room = request.session_id, request.room_name
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
            await wait_for_events(
                dispatcher_redis_url, SESSION_DISPATCHED, SessionDispatched, lambda e: 1 in _attempts(e, sid)
            )
            # No worker serves the agent name: the server dropped the job and the dispatch stays listed.
            await wait_until(
                lambda: sim.state.counters["jobs_dropped.no_worker"] >= 1, deadline_s=10.0, what="job dropped"
            )
            assert len(our_dispatches(sim, room, agent_name)) == 1
            async with (
                running_worker(_agent_settings(sim, dispatcher_redis_url, agent_name)) as worker,
                _room_deleted_on_exit(sim, room),  # the agent's job lasts as long as its room
            ):
                await _wait_status(repo, sid, "ready")
                # Re-dispatched once or more (more if the worker registered only after the second attempt).
                events = await wait_for_events(
                    dispatcher_redis_url, SESSION_DISPATCHED, SessionDispatched, lambda e: len(_attempts(e, sid)) >= 2
                )
                latest = max((e for e in events if e.session_id == sid), key=lambda e: e.attempt)
                assert our_dispatches(sim, room, agent_name) == [latest.dispatch_id]  # the stale one was deleted
                agents = [p for p in sim.state.rooms[room].participants.values() if p.kind == "agent"]
                assert len(agents) == 1
                # Ending the session (the store turns it into session.status_changed) removes room and dispatch,
                # and with them the agent's job.
                await publish(SessionEndRequested(session_id=sid, correlation_id=request.correlation_id))
                await _wait_status(repo, sid, "ended")
                await wait_until(lambda: room not in sim.state.rooms, deadline_s=10.0, what="room deleted")
                await wait_until(lambda: not worker.server.active_jobs, deadline_s=10.0, what="agent job ended")
        finally:
            await store.stop()


@contextlib.asynccontextmanager
async def _room_deleted_on_exit(sim: Simulator, room: str) -> AsyncIterator[None]:
    try:
        yield
    finally:
        async with api.LiveKitAPI(sim.url, "devkey", "secret") as lk:
            with contextlib.suppress(api.TwirpError):
                await lk.room.delete_room(api.DeleteRoomRequest(room=room))


async def _wait_status(repo: PostgresSessionRepository, session_id: str, status: str, timeout: float = 15.0) -> None:

    async def reached() -> bool:
        row = await repo.get(session_id)
        return row is not None and row["status"] == status

    await wait_until(reached, deadline_s=timeout, what=f"session {session_id} {status}", interval_s=0.05)


def _agent_settings(sim: Simulator, redis_url: str, agent_name: str) -> AgentSettings:
    return simulator_agent_settings(
        sim.ws_url, redis_url, agent_name, agent_wait_for_user=False, agent_speak_ms_per_char=0.0
    )


@dataclass
class RecordingWorker:
    """An AgentServer whose first job hangs without joining (a worker about to be killed) and whose
    later jobs announce that they joined (the status change the session store makes of the agent service's
    ``agent.joined``), then stay until released."""

    server: AgentServer
    started: list[str] = field(default_factory=list)  # job ids, in order (list.append is thread-safe)
    jobs: queue.Queue[str] = field(default_factory=queue.Queue)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
async def recording_worker(
    sim: Simulator, dispatcher_redis_url: str, agent_name: str
) -> AsyncIterator[RecordingWorker]:
    server = agent_server_for(sim.ws_url)
    worker = RecordingWorker(server)

    @server.rtc_session(agent_name=agent_name)
    async def entrypoint(ctx: JobContext) -> None:
        first = not worker.started
        worker.started.append(ctx.job.id)
        worker.jobs.put(ctx.job.id)
        if not first:
            metadata = AgentJobMetadata.model_validate_json(ctx.job.metadata)
            broker = RedisBroker(dispatcher_redis_url)
            await broker.connect()
            try:
                # the dispatcher is disarmed by the status change the session store makes of agent.joined
                await BrokerPublisher(broker).publish(
                    SessionStatusChanged(
                        session_id=metadata.session_id,
                        correlation_id=metadata.correlation_id,
                        from_status="dispatched",
                        to_status="agent_joined",
                    )
                )
            finally:
                await broker.stop()
        await asyncio.to_thread(worker.release.wait, 30)
        ctx.shutdown(reason="released")

    async with registered(server):
        try:
            yield worker
        finally:
            worker.release.set()  # before the server closes: it waits for its jobs


async def test_worker_killed_mid_job_gets_the_session_a_new_dispatch(
    sim: Simulator, recording_worker: RecordingWorker, dispatcher_redis_url: str, agent_name: str
) -> None:
    request = session_request()
    sid, room = request.session_id, request.room_name
    async with running_dispatcher(dispatcher_settings(sim, dispatcher_redis_url, agent_name)) as publish:
        await publish(request)
        first_job = await asyncio.to_thread(recording_worker.jobs.get, True, 5.0)
        async with aiohttp.ClientSession() as http, http.post(f"{sim.url}/sim/workers/disconnect") as resp:
            assert (await resp.json())["disconnected"] == 1
        assert sim.state.counters["jobs_lost_with_worker"] == 1
        events = await wait_for_events(
            dispatcher_redis_url, SESSION_DISPATCHED, SessionDispatched, lambda e: 2 in _attempts(e, sid)
        )
        second_job = await asyncio.to_thread(recording_worker.jobs.get, True, 5.0)
        assert second_job != first_job
        assert sim.state.counters["workers_registered"] == 2  # the AgentServer reconnected by itself
        redispatch = next(e for e in events if e.session_id == sid and e.attempt == 2)
        assert our_dispatches(sim, room, agent_name) == [redispatch.dispatch_id]
        redis = Redis.from_url(dispatcher_redis_url)
        try:
            ledger = RedisSessionLedger(redis, agent_name)

            async def state() -> str:
                record = await ledger.get(sid)
                return record.state if record else ""

            deadline = time.monotonic() + 5
            while await state() != "joined":
                assert time.monotonic() < deadline, "agent.joined did not disarm the watchdog"
                await asyncio.sleep(0.02)
        finally:
            await redis.aclose()


async def test_no_worker_ever_fails_the_session_with_an_actionable_reason(
    sim: Simulator, dispatcher_redis_url: str, agent_name: str
) -> None:
    settings = dispatcher_settings(sim, dispatcher_redis_url, agent_name, dispatch_join_timeout_s=0.3)
    request = session_request(ready_in_s=3)  # re-dispatched (every 0.3 s) until the deadline leaves no time
    async with running_dispatcher(settings) as publish:
        await publish(request)
        failures = await wait_for_events(
            dispatcher_redis_url,
            SESSION_DISPATCH_FAILED,
            SessionDispatchFailed,
            lambda events: any(e.session_id == request.session_id for e in events),
        )
    [failed] = [e for e in failures if e.session_id == request.session_id]
    dispatched = await wait_for_events(dispatcher_redis_url, SESSION_DISPATCHED, SessionDispatched, lambda e: True)
    attempts = _attempts(dispatched, request.session_id)
    assert attempts == list(range(1, len(attempts) + 1)) and len(attempts) >= 2
    assert failed.reason == (
        f"no agent joined after {len(attempts)} dispatch attempts; "
        f"is a worker registered under LIVEKIT_AGENT_NAME={agent_name!r}?"
    )
    assert len(our_dispatches(sim, request.room_name, agent_name)) == 1
    # one ListDispatch per look of the watchdog (each re-dispatch, and the last look before giving up): the listing
    # that shows no job starting names the stale dispatch to delete; the first dispatch lists nothing
    assert sim.state.counters["twirp_requests.ListDispatch"] == len(attempts)


async def test_a_job_a_worker_took_is_not_replaced_before_the_full_wait(
    sim: Simulator, recording_worker: RecordingWorker, dispatcher_redis_url: str, agent_name: str
) -> None:
    # A dropped job is re-dispatched after 25 s / 20 attempts = 1.25 s; the first job here is taken by a worker and
    # hangs before agent.joined (a slow start): it keeps its dispatch for the whole 4 s cap.
    cap_s = 4.0
    settings = dispatcher_settings(
        sim,
        dispatcher_redis_url,
        agent_name,
        dispatch_join_timeout_s=cap_s,
        dispatch_join_timeout_min_s=0.5,
        dispatch_max_attempts=20,
    )
    request = session_request()
    sid = request.session_id
    async with running_dispatcher(settings) as publish:
        await publish(request)
        await asyncio.to_thread(recording_worker.jobs.get, True, 5.0)
        events = await wait_for_events(
            dispatcher_redis_url, SESSION_DISPATCHED, SessionDispatched, lambda e: 2 in _attempts(e, sid), timeout=15
        )
    first, second = (next(e for e in events if e.session_id == sid and e.attempt == n) for n in (1, 2))
    waited = (second.occurred_at - first.occurred_at).total_seconds()
    assert waited >= cap_s - 0.2, waited  # not replaced at the dropped job's 1.25 s
    print(f"a starting job kept its dispatch for {waited:.1f} s (cap {cap_s} s)")
