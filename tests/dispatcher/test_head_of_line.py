"""One session request held up by a slow LiveKit call must not hold up the requests read after it.

``session.requested`` is consumed message by message (not in batches): a batch is acked, and the next one read,
only when all of its requests are done, so one slow dispatch would hold back every request behind it.
"""

from __future__ import annotations

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from contracts.events import SessionDispatched
from contracts.streams import SESSION_DISPATCHED
from devstack.livekit_sim import Simulator
from devstack.livekit_sim.faults import Fault
from services.runtime.publishing import BrokerPublisher
from tests.polling import wait_until

from .conftest import dispatcher_settings, events_on, running_dispatcher
from .fakes import session_request

SLOW_CALL_MS = 8_000  # far longer than the quick requests need, even on a loaded machine


async def test_a_slow_dispatch_does_not_hold_the_requests_behind_it(
    sim: Simulator, dispatcher_redis_url: str, agent_name: str
) -> None:
    settings = dispatcher_settings(
        sim,
        dispatcher_redis_url,
        agent_name,
        dispatch_join_timeout_s=600.0,  # no agent here: the watchdog must stay quiet
        dispatch_join_timeout_min_s=600.0,
    )
    slow, quick = session_request(), [session_request(), session_request()]
    redis = Redis.from_url(dispatcher_redis_url)
    broker = RedisBroker(dispatcher_redis_url)
    await broker.connect()
    try:
        async with running_dispatcher(settings):
            publisher = BrokerPublisher(broker)
            # The slow request's CreateRoom is delayed: the fault is cleared once that call is under way, so
            # only this call is slow.
            sim.faults.set(Fault(route="CreateRoom", latency_ms=SLOW_CALL_MS))
            created_before = sim.state.counters["twirp_requests.CreateRoom"]
            await publisher.publish(slow)
            await wait_until(
                lambda: sim.state.counters["twirp_requests.CreateRoom"] > created_before,
                deadline_s=10.0,
                what="the slow request's CreateRoom under way",
            )
            sim.faults.clear()
            for request in quick:
                await publisher.publish(request)

            async def first_dispatched() -> list[str]:
                ours = {r.session_id for r in [slow, *quick]}
                seen: list[str] = []
                for event in await events_on(redis, SESSION_DISPATCHED, SessionDispatched):
                    if event.session_id in ours and event.session_id not in seen:
                        seen.append(event.session_id)
                return seen

            async def all_dispatched() -> bool:
                return len(await first_dispatched()) == 3

            await wait_until(all_dispatched, deadline_s=30.0, what="the three sessions dispatched")
            order = await first_dispatched()
    finally:
        await broker.stop()
        await redis.aclose()

    # The quick requests were read and dispatched while the slow one was still waiting for LiveKit.
    assert set(order[:2]) == {r.session_id for r in quick}
    assert order[2] == slow.session_id
