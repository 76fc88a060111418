"""The watchdog's timing rule: the first dispatch waits LiveKit's offer time, each further one twice the last up to
the cap (jittered), and a session is dispatched again until its readiness deadline leaves no time for another, however
many dispatches that takes (issue #21: a burst on a busy fleet must not fail sessions whose deadline is ahead)."""

from __future__ import annotations

import pytest

from contracts.events import Event, SessionDispatched, SessionDispatchFailed
from services.dispatcher.dispatch_state import DispatchState
from services.dispatcher.dispatching import dispatch_and_announce
from services.dispatcher.ports import SessionRecord
from services.dispatcher.watchdog import WatchdogPolicy, handle_due, scan_once, should_redispatch

from .fakes import FAST, FakeLedger, FakeRooms, NoLocks, session_request

WATCHING = DispatchState.WATCHING
DEFAULTS = WatchdogPolicy()  # the settings' defaults: cap 10 s, floor 5 s, reserve 5 s, started job 30 s
STEADY = WatchdogPolicy(jitter=0)


@pytest.mark.parametrize(
    ("ready_timeout_s", "dispatch_times"),
    [
        (2, [0.0]),  # too short for a second dispatch: the session expires
        (9, [0.0]),
        (10, [0.0, 5.0]),  # a short deadline still gets one re-dispatch
        (15, [0.0, 5.0, 10.0]),  # the reserve cuts the second wait short (never below the floor)
        (30, [0.0, 5.0, 15.0, 25.0]),  # the default deadline: the last wait ends at it (cut short by the reserve)
        (60, [0.0, 5.0, 15.0, 25.0, 35.0, 45.0, 55.0]),
        (600, [0.0, 5.0, *(15.0 + 10 * i for i in range(59))]),  # a long one: every 10 s until the deadline
    ],
)
def test_dispatch_times_per_deadline(ready_timeout_s: float, dispatch_times: list[float]) -> None:
    times = STEADY.dispatch_times(ready_timeout_s)
    assert times == pytest.approx(dispatch_times)
    # Every re-dispatch leaves at least LiveKit's offer time and the job's start before the deadline.
    assert all(t + STEADY.min_join_timeout_s <= ready_timeout_s for t in times[1:])


def test_attempts_do_not_end_a_session_whose_deadline_is_ahead() -> None:
    record = SessionRecord("s", "r", "{}", "c", WATCHING, "AD_9", attempt=50, ready_deadline=1000.0)
    assert should_redispatch(record, DEFAULTS, now=900.0)
    assert not should_redispatch(record, DEFAULTS, now=995.1)


@pytest.mark.parametrize(
    ("attempt", "now", "rand", "expected"),
    [
        (1, 0.0, 0.0, 5.0),  # the first: LiveKit's offer time and the job's start
        (1, 0.0, 1.0, 5.0),  # ... never jittered below it
        (2, 0.0, 0.0, 10.0),  # twice the last, up to the cap
        (2, 0.0, 1.0, 8.0),  # jittered down by up to a fifth
        (3, 0.0, 0.5, 9.0),
        (40, 0.0, 0.0, 10.0),  # capped however many came before
        (3, 35.0, 0.0, 5.0),  # near the deadline: ends at the reserve before it
        (3, 38.0, 0.0, 5.0),  # late (a backlog): never less than the floor
    ],
)
def test_join_timeout_backs_off_to_the_cap(attempt: int, now: float, rand: float, expected: float) -> None:
    assert DEFAULTS.join_timeout(attempt, now, 45.0, rand=lambda: rand) == pytest.approx(expected)


def test_unknown_deadline_waits_the_backoff_and_attempts_stay_bounded() -> None:
    assert STEADY.join_timeout(1, 1000.0, 0.0) == 5.0
    assert STEADY.join_timeout(3, 1000.0, 0.0) == 10.0
    assert STEADY.dispatch_times(10**6)[:3] == [0.0, 5.0, 15.0]
    # A record written before deadlines were kept: bounded by attempts only.
    old = SessionRecord("s", "r", "{}", "c", WATCHING, "AD_1", attempt=2)
    assert should_redispatch(old, DEFAULTS, now=1e9)
    assert not should_redispatch(SessionRecord("s", "r", "{}", "c", WATCHING, "AD_5", attempt=5), DEFAULTS)


def test_no_redispatch_that_cannot_join_before_the_deadline() -> None:
    record = SessionRecord("s", "r", "{}", "c", WATCHING, "AD_1", attempt=1, ready_deadline=1000.0)
    assert should_redispatch(record, DEFAULTS, now=995.0)  # 5 s left: an offer fits
    assert not should_redispatch(record, DEFAULTS, now=995.1)


def test_a_floor_above_the_cap_yields_to_the_cap() -> None:
    quick = WatchdogPolicy(join_timeout_s=1.0, jitter=0)  # tests' settings: 1 s per attempt
    assert quick.join_timeout(1, 0.0, 30.0) == 1.0
    assert quick.join_timeout(4, 0.0, 30.0) == 1.0
    assert quick.dispatch_times(5) == [0.0, 1.0, 2.0, 3.0, 4.0]


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_the_dispatcher_and_the_watchdog_arm_by_the_session_deadline() -> None:
    request = session_request()  # its readiness deadline is 30 s from now
    deadline = request.ready_deadline.timestamp()
    clock = _Clock(deadline - 30)
    rooms, ledger = FakeRooms(), FakeLedger()
    first = (await dispatch_and_announce(request, rooms, NoLocks(), ledger, FAST, STEADY, clock)).event
    assert isinstance(first, SessionDispatched)
    assert ledger.deadlines[request.session_id] == pytest.approx(deadline - 25)  # due 5 s after the dispatch
    published: list[Event] = []

    async def settle(record: SessionRecord) -> None:
        outcome = await handle_due(record, rooms, NoLocks(), ledger, FAST, STEADY, clock)
        if outcome is not None:
            published.append(outcome)

    for attempt, at in ((2, 5), (3, 15), (4, 25)):
        clock.now = deadline - 30 + at
        await scan_once(ledger, settle, STEADY, clock)
        assert isinstance(published[-1], SessionDispatched) and published[-1].attempt == attempt
    clock.now = deadline
    await scan_once(ledger, settle, STEADY, clock)
    assert isinstance(published[-1], SessionDispatchFailed) and published[-1].code == "no_agent_available"
    assert len(published) == 4


async def test_a_job_a_worker_took_gets_the_full_wait_before_it_is_replaced() -> None:
    request = session_request(ready_in_s=120)
    start = request.ready_deadline.timestamp() - 120
    clock = _Clock(start)
    rooms, ledger = FakeRooms(), FakeLedger()
    first = (await dispatch_and_announce(request, rooms, NoLocks(), ledger, FAST, DEFAULTS, clock)).event
    assert isinstance(first, SessionDispatched)
    [made] = rooms.dispatches[request.room_name]  # made with the room: the event does not name it
    rooms.jobs_started[made] = clock.now + 0.5  # a worker took the job; its agent starts slowly
    published: list[Event] = []

    async def settle(record: SessionRecord) -> None:
        outcome = await handle_due(record, rooms, NoLocks(), ledger, FAST, DEFAULTS, clock)
        if outcome is not None:
            published.append(outcome)

    clock.now += 5  # the wait of a dropped job: this one is starting, so it is left alone
    await scan_once(ledger, settle, DEFAULTS, clock)
    assert published == [] and rooms.dispatches[request.room_name] == [made]
    assert ledger.deadlines[request.session_id] == pytest.approx(start + 0.5 + DEFAULTS.started_job_timeout_s)
    clock.now = start + 0.5 + DEFAULTS.join_timeout_s  # past the longest join wait: still starting, left alone
    await scan_once(ledger, settle, DEFAULTS, clock)
    assert published == []
    clock.now = start + 30.5  # started_job_timeout_s after the worker took it: taken for lost, replaced
    await scan_once(ledger, settle, DEFAULTS, clock)
    [again] = published
    assert isinstance(again, SessionDispatched) and again.attempt == 2 and again.dispatch_id != made


async def test_the_last_attempt_waits_for_a_starting_job_before_giving_up() -> None:
    policy = WatchdogPolicy()
    request = session_request()
    deadline = request.ready_deadline.timestamp()
    clock = _Clock(deadline - 30)
    rooms, ledger = FakeRooms(), FakeLedger()
    first = (await dispatch_and_announce(request, rooms, NoLocks(), ledger, FAST, policy, clock)).event
    assert isinstance(first, SessionDispatched)
    [made] = rooms.dispatches[request.room_name]  # made with the room: the event does not name it
    rooms.jobs_started[made] = deadline - 20
    record = await ledger.get(request.session_id)
    assert record is not None
    clock.now = deadline + 9  # no further dispatch fits: but the job may still come
    assert await handle_due(record, rooms, NoLocks(), ledger, FAST, policy, clock) is None
    clock.now += 1
    failed = await handle_due(record, rooms, NoLocks(), ledger, FAST, policy, clock)
    assert isinstance(failed, SessionDispatchFailed)
