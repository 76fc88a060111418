"""The watchdog's timing rule: every dispatch waits a share of the time left before the session's deadline,
between LiveKit's offer expiry and the configured cap, so re-dispatches happen well before the deadline."""

from __future__ import annotations

import pytest

from contracts.events import Event, SessionDispatched, SessionDispatchFailed
from services.dispatcher.dispatch_state import DispatchState
from services.dispatcher.dispatching import dispatch_session
from services.dispatcher.ports import SessionRecord
from services.dispatcher.watchdog import WatchdogPolicy, handle_due, scan_once, should_redispatch

from .fakes import FAST, FakeLedger, FakeRooms, NoLocks, session_request

WATCHING = DispatchState.WATCHING
DEFAULTS = WatchdogPolicy()  # the settings' defaults: cap 10 s, floor 5 s, reserve 5 s, 5 attempts


@pytest.mark.parametrize(
    ("ready_timeout_s", "dispatch_times", "last_wait_s"),
    [
        (2, [0.0], 5.0),  # too short for a second dispatch: the session expires
        (9, [0.0], 5.0),
        (10, [0.0, 5.0], 5.0),  # a short deadline still gets one re-dispatch
        (15, [0.0, 5.0, 10.0], 5.0),
        (20, [0.0, 5.0, 10.0, 15.0], 5.0),
        (30, [0.0, 5.0, 10.0, 15.0, 20.0], 5.0),  # the default deadline: four re-dispatches, the last at 20 s
        (45, [0.0, 8.0, 16.0, 24.0, 32.0], 8.0),  # 40 s to share over 5 attempts
        (60, [0.0, 10.0, 20.0, 30.0, 40.0], 10.0),  # a long deadline: the cap keeps re-dispatches quick
        (600, [0.0, 10.0, 20.0, 30.0, 40.0], 10.0),
    ],
)
def test_dispatch_times_per_deadline(ready_timeout_s: float, dispatch_times: list[float], last_wait_s: float) -> None:
    times = DEFAULTS.dispatch_times(ready_timeout_s)
    assert times == pytest.approx(dispatch_times)
    last = times[-1]
    assert DEFAULTS.join_timeout(len(times), last, ready_timeout_s) == pytest.approx(last_wait_s)
    # Every re-dispatch leaves at least LiveKit's offer time and the job's start before the deadline.
    assert all(t + DEFAULTS.min_join_timeout_s <= ready_timeout_s for t in times[1:])


def test_the_default_deadline_fits_two_further_attempts_and_time_to_get_ready() -> None:
    times = DEFAULTS.dispatch_times(30)
    assert len(times) - 1 >= 2
    last_due = times[-1] + DEFAULTS.join_timeout(len(times), times[-1], 30)
    assert last_due + DEFAULTS.ready_reserve_s <= 30


@pytest.mark.parametrize(
    ("attempt", "now", "expected"),
    [
        (1, 0.0, 8.0),  # 40 s left after the reserve, 5 attempts to share them
        (2, 8.0, 8.0),
        (5, 32.0, 8.0),
        (5, 38.0, 5.0),  # late (a backlog): never less than the floor
        (1, -100.0, 10.0),  # plenty of time: never more than the cap
    ],
)
def test_join_timeout_shares_the_time_left(attempt: int, now: float, expected: float) -> None:
    assert DEFAULTS.join_timeout(attempt, now, 45.0) == pytest.approx(expected)


def test_unknown_deadline_waits_the_cap_and_attempts_stay_bounded() -> None:
    assert DEFAULTS.join_timeout(1, 1000.0, 0.0) == 10.0
    assert DEFAULTS.dispatch_times(10**6) == [0.0, 10.0, 20.0, 30.0, 40.0]
    # A record written before deadlines were kept: bounded by attempts only.
    old = SessionRecord("s", "r", "{}", "c", WATCHING, "AD_1", attempt=2)
    assert should_redispatch(old, DEFAULTS, now=1e9)
    assert not should_redispatch(SessionRecord("s", "r", "{}", "c", WATCHING, "AD_5", attempt=5), DEFAULTS)


def test_no_redispatch_that_cannot_join_before_the_deadline() -> None:
    record = SessionRecord("s", "r", "{}", "c", WATCHING, "AD_1", attempt=1, ready_deadline=1000.0)
    assert should_redispatch(record, DEFAULTS, now=995.0)  # 5 s left: an offer fits
    assert not should_redispatch(record, DEFAULTS, now=995.1)


def test_a_floor_above_the_cap_yields_to_the_cap() -> None:
    quick = WatchdogPolicy(join_timeout_s=1.0, max_attempts=5)  # tests' settings: 1 s per attempt
    assert quick.join_timeout(1, 0.0, 30.0) == 1.0
    assert quick.dispatch_times(30) == [0.0, 1.0, 2.0, 3.0, 4.0]


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
    first = await dispatch_session(request, rooms, NoLocks(), ledger, FAST, DEFAULTS, clock)
    assert isinstance(first, SessionDispatched)
    assert ledger.deadlines[request.session_id] == pytest.approx(deadline - 25)  # due 5 s after the dispatch
    published: list[Event] = []

    async def settle(record: SessionRecord) -> None:
        outcome = await handle_due(record, rooms, NoLocks(), ledger, FAST, DEFAULTS, clock)
        if outcome is not None:
            published.append(outcome)

    for attempt, at in ((2, 5), (3, 10), (4, 15), (5, 20)):
        clock.now = deadline - 30 + at
        await scan_once(ledger, settle, DEFAULTS, clock)
        assert isinstance(published[-1], SessionDispatched) and published[-1].attempt == attempt
    clock.now = deadline - 5
    await scan_once(ledger, settle, DEFAULTS, clock)
    assert isinstance(published[-1], SessionDispatchFailed) and published[-1].code == "no_agent_available"
    assert len(published) == 5


async def test_a_job_a_worker_took_gets_the_full_wait_before_it_is_replaced() -> None:
    request = session_request()
    deadline = request.ready_deadline.timestamp()
    clock = _Clock(deadline - 30)
    rooms, ledger = FakeRooms(), FakeLedger()
    first = await dispatch_session(request, rooms, NoLocks(), ledger, FAST, DEFAULTS, clock)
    assert isinstance(first, SessionDispatched)
    rooms.jobs_started[first.dispatch_id] = clock.now + 0.5  # a worker took the job; its agent starts slowly
    published: list[Event] = []

    async def settle(record: SessionRecord) -> None:
        outcome = await handle_due(record, rooms, NoLocks(), ledger, FAST, DEFAULTS, clock)
        if outcome is not None:
            published.append(outcome)

    clock.now += 5  # the share of a dropped job: this one is starting, so it is left alone
    await scan_once(ledger, settle, DEFAULTS, clock)
    assert published == [] and rooms.dispatches[request.room_name] == [first.dispatch_id]
    assert ledger.deadlines[request.session_id] == pytest.approx(deadline - 30 + 0.5 + DEFAULTS.join_timeout_s)
    clock.now = deadline - 30 + 10.5  # join_timeout_s after the worker took it: replaced
    await scan_once(ledger, settle, DEFAULTS, clock)
    [again] = published
    assert isinstance(again, SessionDispatched) and again.attempt == 2 and again.dispatch_id != first.dispatch_id


async def test_the_last_attempt_waits_for_a_starting_job_before_giving_up() -> None:
    policy = WatchdogPolicy(max_attempts=1)
    request = session_request()
    clock = _Clock(request.ready_deadline.timestamp() - 30)
    rooms, ledger = FakeRooms(), FakeLedger()
    first = await dispatch_session(request, rooms, NoLocks(), ledger, FAST, policy, clock)
    assert isinstance(first, SessionDispatched)
    rooms.jobs_started[first.dispatch_id] = clock.now
    record = await ledger.get(request.session_id)
    assert record is not None
    clock.now += 9
    assert await handle_due(record, rooms, NoLocks(), ledger, FAST, policy, clock) is None
    clock.now += 1
    failed = await handle_due(record, rooms, NoLocks(), ledger, FAST, policy, clock)
    assert isinstance(failed, SessionDispatchFailed)
