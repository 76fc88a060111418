"""Dispatch pacing: the pacer's rules, then a dispatcher on real Redis and the simulator holding a burst back."""

from __future__ import annotations

import asyncio
import contextlib
import time

from redis.asyncio import Redis

from contracts.events import SessionRequested, SessionStatusChanged
from contracts.streams import SESSION_REQUESTED, Groups
from devstack.livekit_sim import Simulator
from services.dispatcher.ledger import RedisSessionLedger
from services.dispatcher.pacing import DispatchPacer, PacingPolicy
from tests.polling import wait_until

from .conftest import dispatcher_settings, our_dispatches, running_dispatcher
from .fakes import session_request


class Waiting:
    """The shared count the pacer reads, set by the test (in production: the ledger's watch set)."""

    def __init__(self) -> None:
        self.value = 0
        self.reads = 0

    async def __call__(self) -> int:
        self.reads += 1
        return self.value


async def test_admits_up_to_the_cap_counting_its_own_dispatches_in_progress() -> None:
    waiting = Waiting()
    waiting.value = 1
    pacer = DispatchPacer(waiting, PacingPolicy(max_waiting=3, max_wait_s=30, look_every_s=0.01))
    async with pacer.slot(), pacer.slot():  # 1 waiting + 2 in progress = the cap
        third = asyncio.create_task(_enter(pacer))
        await asyncio.sleep(0.1)  # the fault under test: time passes, the third must not get in
        assert not third.done()
        waiting.value = 0  # one agent joined
        await asyncio.wait_for(third, timeout=5)


async def test_a_finished_dispatch_still_counts_until_the_count_shows_it() -> None:
    waiting = Waiting()
    pacer = DispatchPacer(waiting, PacingPolicy(max_waiting=1, max_wait_s=30, look_every_s=0.3))
    async with pacer.slot():
        waiting.value = 1  # armed: in the shared count, but this replica read the count before
    second = asyncio.create_task(_enter(pacer))
    await asyncio.sleep(0.1)  # the fault under test: a look is not due yet, the stale count says 0
    assert not second.done()
    waiting.value = 0  # its agent joined
    await asyncio.wait_for(second, timeout=5)


async def test_far_below_the_cap_a_look_is_trusted_longer() -> None:
    waiting = Waiting()
    pacer = DispatchPacer(waiting, PacingPolicy(max_waiting=10, max_wait_s=30, look_every_s=0.0, relaxed_look_s=60))
    for _ in range(5):  # its own dispatches count: 0..4 waiting, each under half the cap
        await _enter(pacer)
    assert waiting.reads == 1
    await _enter(pacer)  # 5 of 10: half the cap, the count is read again (every look_every_s)
    assert waiting.reads == 2


async def test_releases_its_slot_when_the_dispatch_fails() -> None:
    pacer = DispatchPacer(Waiting(), PacingPolicy(max_waiting=1, max_wait_s=30, look_every_s=0.01))
    try:
        async with pacer.slot():
            raise RuntimeError("LiveKit said no")
    except RuntimeError:
        pass
    assert await asyncio.wait_for(_enter(pacer), timeout=5) < 1


async def test_gives_up_waiting_after_the_bound_and_dispatches_anyway() -> None:
    waiting = Waiting()
    waiting.value = 10
    pacer = DispatchPacer(waiting, PacingPolicy(max_waiting=5, max_wait_s=0.2, look_every_s=0.01))
    started = time.monotonic()
    waited = await asyncio.wait_for(_enter(pacer), timeout=5)
    assert 0.2 <= waited <= time.monotonic() - started


async def test_many_waiting_handlers_share_one_count_read_per_look() -> None:
    waiting = Waiting()
    waiting.value = 5
    pacer = DispatchPacer(waiting, PacingPolicy(max_waiting=5, max_wait_s=0.3, look_every_s=0.05))
    await asyncio.gather(*(_enter(pacer) for _ in range(50)))
    assert waiting.reads <= 0.3 / 0.05 + 2  # not 50 handlers x 6 looks


async def test_a_session_waits_no_longer_than_it_may_and_one_past_its_deadline_takes_no_slot() -> None:
    waiting = Waiting()
    waiting.value = 5
    pacer = DispatchPacer(waiting, PacingPolicy(max_waiting=5, max_wait_s=30, look_every_s=0.01))
    started = time.monotonic()
    async with pacer.slot(max_wait_s=0.2) as waited:
        assert 0.2 <= waited < 5
    async with pacer.slot(max_wait_s=-1.0) as waited:
        assert waited == 0.0
    assert time.monotonic() - started < 5
    waiting.value = 4  # one free slot: the past-deadline session above did not keep one
    assert await asyncio.wait_for(_enter(pacer), timeout=5) < 1


async def test_zero_turns_pacing_off() -> None:
    waiting = Waiting()
    waiting.value = 1_000
    pacer = DispatchPacer(waiting, PacingPolicy(max_waiting=0, max_wait_s=30))
    assert await asyncio.wait_for(_enter(pacer), timeout=5) == 0.0
    assert waiting.reads == 0


async def _enter(pacer: DispatchPacer) -> float:
    async with pacer.slot() as waited:
        return waited


async def test_a_burst_is_dispatched_no_faster_than_agents_join(
    sim: Simulator, dispatcher_redis_url: str, agent_name: str
) -> None:
    cap, sessions = 4, 10
    settings = dispatcher_settings(
        sim,
        dispatcher_redis_url,
        agent_name,
        dispatch_max_waiting=cap,
        dispatch_join_timeout_s=600.0,  # no agent in this test: the watchdog must stay quiet
        dispatch_join_timeout_min_s=600.0,
    )
    requests = [session_request() for _ in range(sessions)]

    def dispatched() -> list[SessionRequested]:
        return [r for r in requests if our_dispatches(sim, r.room_name, agent_name)]

    redis = Redis.from_url(dispatcher_redis_url)
    ledger = RedisSessionLedger(redis, agent_name)
    try:
        async with running_dispatcher(settings) as publish:
            for request in requests:
                await publish(request)
            await wait_until(lambda: len(dispatched()) >= cap, deadline_s=10.0, what=f"{cap} dispatched")
            assert settings.consumer_name is not None
            await _until_held(
                redis, settings.consumer_name, sessions - cap
            )  # the rest were read and are held, not left unread
            assert len(dispatched()) == cap
            assert await ledger.waiting() == cap

            joined_ids: set[str] = set()
            for joined in range(sessions):  # each agent that joins lets one more session through
                await wait_until(lambda n=joined: len(dispatched()) > n, deadline_s=10.0, what=f"dispatch {joined + 1}")
                assert len(dispatched()) <= joined + cap
                first_waiting = next(r for r in dispatched() if r.session_id not in joined_ids)
                joined_ids.add(first_waiting.session_id)
                # as the session store announces the agent's agent.joined
                joined = SessionStatusChanged(
                    session_id=first_waiting.session_id, from_status="dispatched", to_status="agent_joined"
                )
                await publish(joined)
            assert len(dispatched()) == sessions
    finally:
        await redis.aclose()


async def _until_held(redis: Redis, consumer: str, held: int, timeout: float = 10.0) -> None:
    """Wait until the dispatcher has read ``held`` more requests than it dispatched (read, not acked)."""

    async def holds() -> bool:
        pending = await redis.xpending(SESSION_REQUESTED, Groups.DISPATCHER)
        mine = {
            (c["name"].decode() if isinstance(c["name"], bytes) else c["name"]): c["pending"]
            for c in pending["consumers"]
        }
        return bool(mine.get(consumer, 0) >= held)

    await wait_until(holds, deadline_s=timeout, what=f"{held} requests read and held by {consumer}")


async def test_held_sessions_are_let_in_in_the_order_they_came() -> None:
    waiting = Waiting()
    waiting.value = 2
    pacer = DispatchPacer(waiting, PacingPolicy(max_waiting=2, max_wait_s=30, look_every_s=0.01))
    order: list[int] = []

    async def dispatch(n: int) -> None:
        async with pacer.slot():
            order.append(n)

    held = []
    for n in range(5):
        held.append(asyncio.create_task(dispatch(n)))
        await asyncio.sleep(0)  # each one in line before the next comes
    for admitted in range(1, 6):
        waiting.value = 2 - 1  # one agent joined: room for one
        await wait_until(lambda a=admitted: len(order) >= a, deadline_s=5.0, what=f"{admitted} let in")
        waiting.value = 2
    await asyncio.gather(*held)
    assert order == [0, 1, 2, 3, 4]


async def test_held_handlers_wait_without_waking_one_look_lets_them_in() -> None:
    """Fifty sessions held for half a second: the look loop reads the clock a few times per look; the handlers do
    not poll (each woke every look before: 50 handlers x 10 looks x 2 clock reads)."""

    class Clock:
        calls = 0

        def __call__(self) -> float:
            Clock.calls += 1
            return time.monotonic()

    waiting = Waiting()
    waiting.value = 5
    pacer = DispatchPacer(waiting, PacingPolicy(max_waiting=5, max_wait_s=30, look_every_s=0.05), clock=Clock())
    held = [asyncio.create_task(_enter(pacer)) for _ in range(50)]
    await asyncio.sleep(0.5)  # the scenario: sessions held while the fleet is full
    assert not any(task.done() for task in held)
    assert Clock.calls < 50 * 3 + 10 * 3  # each handler's own few reads, and the looks'
    assert waiting.reads <= 0.5 / 0.05 + 2
    waiting.value = 0
    await asyncio.wait_for(asyncio.gather(*held), timeout=10)  # five at a time as their slots end


async def test_a_handler_cancelled_while_held_leaves_the_line_and_no_slot_behind() -> None:
    waiting = Waiting()
    waiting.value = 1
    pacer = DispatchPacer(waiting, PacingPolicy(max_waiting=1, max_wait_s=30, look_every_s=0.01))
    first = asyncio.create_task(_enter(pacer))
    await asyncio.sleep(0.05)  # the scenario: it is held (the cap is reached)
    assert not first.done()
    first.cancel()  # its delivery was stopped (shutdown, handler timeout)
    with contextlib.suppress(asyncio.CancelledError):
        await first
    waiting.value = 0
    assert await asyncio.wait_for(_enter(pacer), timeout=5) < 5  # the slot was not kept by the cancelled one
    await pacer.aclose()


async def test_a_failing_count_keeps_the_waits_bounded() -> None:
    reads = 0

    async def count() -> int:
        nonlocal reads
        reads += 1
        if reads > 1:
            raise ConnectionError("Redis is away")
        return 5

    pacer = DispatchPacer(count, PacingPolicy(max_waiting=5, max_wait_s=0.2, look_every_s=0.01))
    started = time.monotonic()
    waited = await asyncio.wait_for(_enter(pacer), timeout=5)  # dispatched anyway once its wait ran out
    assert 0.2 <= waited <= time.monotonic() - started
    assert reads > 2  # the look loop went on reading
