"""Watchdog and clean-up rules with fake ports: re-dispatch until the session's deadline leaves no time for another
(a record without a deadline: while attempts remain), then fail with a reason; never re-dispatch a session that an
agent joined or that is over; clean-up is idempotent."""

from __future__ import annotations

import time

from contracts.events import SessionDispatched, SessionDispatchFailed, SessionStatusChanged
from services.dispatcher.cleanup import clean_up_session
from services.dispatcher.dispatch_state import DispatchState
from services.dispatcher.dispatching import dispatch_and_announce
from services.dispatcher.ports import PermanentLiveKitError, SessionRecord, TransientLiveKitError
from services.dispatcher.watchdog import WatchdogPolicy, handle_due, scan_once, should_redispatch

from .fakes import AGENT, FAST, FakeLedger, FakeRooms, NoLocks, session_request

# every wait 10 s (no backoff, no jitter): a session due to be ready in 30 s is dispatched at 0, 10 and 20 s
POLICY = WatchdogPolicy(join_timeout_s=10, min_join_timeout_s=10, max_attempts=3, lease_s=60, jitter=0)


class Clock:
    """A clock the test moves by hand, from the time the test's sessions are requested (due to be ready 30 s on)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def _dispatched(rooms: FakeRooms, ledger: FakeLedger, clock: Clock, ready_in_s: float = 30) -> SessionDispatched:
    request = session_request(ready_in_s=ready_in_s)
    outcome = (await dispatch_and_announce(request, rooms, NoLocks(), ledger, FAST, POLICY, clock)).event
    assert isinstance(outcome, SessionDispatched)
    return outcome


def _made(rooms: FakeRooms, dispatched: SessionDispatched) -> str:
    """The id of the session's one dispatch, as LiveKit lists it (made with the room: the event does not name it)."""
    [dispatch_id] = rooms.dispatches[dispatched.room_name]
    return dispatch_id


async def _scan(rooms: FakeRooms, ledger: FakeLedger, clock: Clock) -> list[object]:
    published: list[object] = []

    async def settle(record: SessionRecord) -> None:
        outcome = await handle_due(record, rooms, NoLocks(), ledger, FAST, POLICY, clock)
        if outcome is not None:
            published.append(outcome)

    await scan_once(ledger, settle, POLICY, clock)
    return published


def test_attempts_are_bounded() -> None:
    record = SessionRecord("s", "r", "{}", "c", DispatchState.WATCHING, "AD_1", attempt=1)
    assert should_redispatch(record, POLICY)
    assert not should_redispatch(SessionRecord("s", "r", "{}", "c", DispatchState.WATCHING, "AD_3", attempt=3), POLICY)


async def test_a_redispatch_deletes_the_stale_dispatches_the_job_look_listed() -> None:
    rooms, ledger, clock = FakeRooms(), FakeLedger(), Clock()
    first = await _dispatched(rooms, ledger, clock)
    made = _made(rooms, first)
    clock.now += 10
    [again] = await _scan(rooms, ledger, clock)
    assert isinstance(again, SessionDispatched) and again.dispatch_id != made
    assert rooms.replaced_listed == [(made,)]  # not listed a second time


async def test_nothing_is_due_before_the_join_timeout() -> None:
    rooms, ledger, clock = FakeRooms(), FakeLedger(), Clock()
    await _dispatched(rooms, ledger, clock)
    clock.now += 9.9
    assert await _scan(rooms, ledger, clock) == []


async def test_redispatches_then_gives_up_with_an_actionable_reason() -> None:
    rooms, ledger, clock = FakeRooms(), FakeLedger(), Clock()
    first = await _dispatched(rooms, ledger, clock)
    made = _made(rooms, first)
    seen = [made]
    for attempt in (2, 3):
        clock.now += 10
        [again] = await _scan(rooms, ledger, clock)
        assert isinstance(again, SessionDispatched)
        assert again.attempt == attempt and again.dispatch_id not in seen
        assert rooms.dispatches[first.room_name] == [again.dispatch_id]  # the stale one is gone
        seen.append(again.dispatch_id)
    clock.now += 10
    [failed] = await _scan(rooms, ledger, clock)
    assert isinstance(failed, SessionDispatchFailed)
    assert failed.reason == (
        f"no agent joined after 3 dispatch attempts; is a worker registered under LIVEKIT_AGENT_NAME={AGENT!r}?"
    )
    assert failed.correlation_id == first.correlation_id
    clock.now += 100
    assert await _scan(rooms, ledger, clock) == []


async def test_joined_session_is_never_redispatched() -> None:
    rooms, ledger, clock = FakeRooms(), FakeLedger(), Clock()
    first = await _dispatched(rooms, ledger, clock)
    made = _made(rooms, first)
    await ledger.mark_joined(first.session_id)
    clock.now += 100
    assert await _scan(rooms, ledger, clock) == []
    assert rooms.dispatches[first.room_name] == [made]


async def test_agent_joining_while_the_watch_is_claimed_stops_the_redispatch() -> None:
    rooms, ledger, clock = FakeRooms(), FakeLedger(), Clock()
    first = await _dispatched(rooms, ledger, clock)
    made = _made(rooms, first)
    clock.now += 10
    [claimed] = await ledger.claim_due(clock(), POLICY.lease_s, 10)
    await ledger.mark_joined(first.session_id)
    assert await handle_due(claimed, rooms, NoLocks(), ledger, FAST, POLICY, clock) is None
    assert rooms.dispatches[first.room_name] == [made]


async def test_agent_in_the_room_whose_joined_event_is_late_is_not_doubled() -> None:
    rooms, ledger, clock = FakeRooms(), FakeLedger(), Clock()
    first = await _dispatched(rooms, ledger, clock)
    made = _made(rooms, first)
    rooms.agents_in.add(first.room_name)
    clock.now += 10
    assert await _scan(rooms, ledger, clock) == []
    assert rooms.dispatches[first.room_name] == [made]
    assert ledger.records[first.session_id].state == "joined"


async def test_transient_failure_leaves_the_watch_leased_for_later() -> None:
    rooms, ledger, clock = FakeRooms(), FakeLedger(), Clock()
    first = await _dispatched(rooms, ledger, clock, ready_in_s=120)  # still wanted after the lease
    rooms.failures = [TransientLiveKitError("503")] * FAST.attempts
    clock.now += 10
    assert await _scan(rooms, ledger, clock) == []
    clock.now += POLICY.lease_s
    [again] = await _scan(rooms, ledger, clock)
    assert isinstance(again, SessionDispatched) and again.attempt == 2
    assert again.session_id == first.session_id


async def test_permanent_failure_of_a_redispatch_fails_the_session() -> None:
    rooms, ledger, clock = FakeRooms(), FakeLedger(), Clock()
    await _dispatched(rooms, ledger, clock)
    rooms.failures = [PermanentLiveKitError("401 unauthenticated: permissions denied")]
    clock.now += 10
    [failed] = await _scan(rooms, ledger, clock)
    assert isinstance(failed, SessionDispatchFailed) and "permissions denied" in failed.reason
    clock.now += 100
    assert await _scan(rooms, ledger, clock) == []


def _changed(session_id: str, to_status: str) -> SessionStatusChanged:
    return SessionStatusChanged(session_id=session_id, from_status="dispatched", to_status=to_status)


async def test_terminal_status_removes_the_room_and_stops_the_watch() -> None:
    rooms, ledger, clock = FakeRooms(), FakeLedger(), Clock()
    first = await _dispatched(rooms, ledger, clock)
    assert await clean_up_session(_changed(first.session_id, "agent_joined"), rooms, NoLocks(), ledger, FAST)
    assert first.room_name in rooms.rooms
    assert await clean_up_session(_changed(first.session_id, "expired"), rooms, NoLocks(), ledger, FAST)
    assert first.room_name not in rooms.rooms and first.room_name not in rooms.dispatches
    clock.now += 100
    assert await _scan(rooms, ledger, clock) == []
    # a duplicate of the change, or a room LiveKit already closed, is success too
    assert await clean_up_session(_changed(first.session_id, "expired"), rooms, NoLocks(), ledger, FAST)


async def test_session_ended_before_its_request_is_never_dispatched() -> None:
    rooms, ledger, clock = FakeRooms(), FakeLedger(), Clock()
    request = session_request()
    assert await clean_up_session(_changed(request.session_id, "ended"), rooms, NoLocks(), ledger, FAST)
    assert (await dispatch_and_announce(request, rooms, NoLocks(), ledger, FAST, POLICY, clock)).event is None
    assert rooms.rooms == {}


async def test_cleanup_failure_is_reported_not_raised() -> None:
    rooms, ledger, clock = FakeRooms(), FakeLedger(), Clock()
    first = await _dispatched(rooms, ledger, clock, ready_in_s=120)  # still wanted after the lease
    rooms.failures = [TransientLiveKitError("503")] * FAST.attempts
    assert not await clean_up_session(_changed(first.session_id, "failed"), rooms, NoLocks(), ledger, FAST)
