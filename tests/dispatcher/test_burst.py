"""A burst: 2,000 session requests while the simulator adds 50 ms to every call. All are dispatched, each
room holds exactly one dispatch of our agent, and LiveKit never sees more requests at once than the cap."""

from __future__ import annotations

import asyncio
import time

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from contracts.events import SessionDispatched
from contracts.streams import SESSION_DISPATCHED
from devstack.livekit_sim import Simulator
from devstack.livekit_sim.faults import Fault
from services.runtime.publishing import BrokerPublisher

from .conftest import dispatcher_settings, events_on, running_dispatcher
from .fakes import session_request

SESSIONS = 2_000
IN_FLIGHT_CAP = 32
LATENCY_MS = 50
# About 25 s on an idle 2-core machine (CPU-bound: client, simulator and Redis share it); the bound
# leaves room for a busy CI runner.
DEADLINE_S = 120


async def test_burst_of_requests_respects_the_in_flight_cap(
    sim: Simulator, burst_redis_url: str, agent_name: str, quiet_logs: None
) -> None:
    sim.faults.set(Fault(route="*", latency_ms=LATENCY_MS))
    settings = dispatcher_settings(
        sim,
        burst_redis_url,
        agent_name,
        livekit_max_in_flight=IN_FLIGHT_CAP,
        # Enough handlers to keep the cap busy (each makes one LiveKit call at a time), few enough that the
        # broker's non-blocking pool of 100 Redis connections is never exhausted.
        max_workers=48,
        dispatch_join_timeout_s=600.0,  # no agent in this test: the watchdog must stay quiet
        dispatch_join_timeout_min_s=600.0,
        dispatch_max_waiting=0,  # nor may pacing hold the burst back: the cap under test is LiveKit's in-flight
    )
    # The sessions must stay wanted for as long as the test waits: the dispatcher skips (acks, no event) every
    # request it reads past its readiness deadline, so a default 30 s deadline turned a slow run into a "stall".
    requests = [session_request(ready_in_s=DEADLINE_S + 60) for _ in range(SESSIONS)]
    broker = RedisBroker(burst_redis_url)
    await broker.connect()
    redis = Redis.from_url(burst_redis_url)
    started = time.monotonic()
    try:
        async with running_dispatcher(settings):
            publisher = BrokerPublisher(broker)
            for i in range(0, SESSIONS, 50):  # as fast as the publishing side's Redis pool allows
                await asyncio.gather(*(publisher.publish(r) for r in requests[i : i + 50]))
            published_s = time.monotonic() - started
            deadline = started + DEADLINE_S
            while await redis.xlen(SESSION_DISPATCHED) < SESSIONS:
                assert time.monotonic() < deadline, f"{await redis.xlen(SESSION_DISPATCHED)} of {SESSIONS} dispatched"
                await asyncio.sleep(0.1)
            elapsed_s = time.monotonic() - started
        dispatched = await events_on(redis, SESSION_DISPATCHED, SessionDispatched)
    finally:
        await broker.stop()
        await redis.aclose()

    assert {e.session_id for e in dispatched} == {r.session_id for r in requests}
    assert len(dispatched) == SESSIONS
    ours = {
        name: [d.id for d in room.dispatches.values() if d.agent_name == agent_name]
        for name, room in sim.state.rooms.items()
    }
    assert set(ours) == {r.room_name for r in requests}
    assert all(len(ids) == 1 for ids in ours.values())
    assert {e.dispatch_id for e in dispatched} == {""}  # each made with its room: CreateRoom does not name it
    peak = sim.state.counters["twirp_in_flight_peak"]
    assert 0 < peak <= IN_FLIGHT_CAP
    # Each session costs one CreateRoom with its agent, at least LATENCY_MS (a first try has nothing to list).
    assert sim.state.counters["twirp_requests"] == SESSIONS
    assert sim.state.counters["twirp_requests.ListDispatch"] == 0
    print(
        f"\nburst: {SESSIONS} sessions in {elapsed_s:.1f} s (published in {published_s:.1f} s), peak in flight {peak}"
    )
