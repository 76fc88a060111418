"""Dispatch rules with fake ports: bounded retries on transient errors, none on permanent ones, the
watchdog armed once, nothing created for a session that is already over."""

from __future__ import annotations

from datetime import UTC, datetime

from structlog.testing import capture_logs

from contracts.events import Event, SessionDispatched, SessionDispatchFailed, SessionRequested
from contracts.job import AgentJobMetadata
from contracts.providers import ProviderChoice
from services.dispatcher.dispatching import dispatch_and_announce
from services.dispatcher.ports import PermanentLiveKitError, TransientLiveKitError
from services.dispatcher.watchdog import WatchdogPolicy

from .fakes import FAST, FakeLedger, FakeRooms, NoLocks, session_request

WATCH = WatchdogPolicy(join_timeout_s=10, min_join_timeout_s=10, max_attempts=3)  # the first wait: 10 s


async def _dispatch(rooms: FakeRooms, ledger: FakeLedger, request: SessionRequested) -> Event | None:
    return (await dispatch_and_announce(request, rooms, NoLocks(), ledger, FAST, WATCH, clock=lambda: 1000.0)).event


async def test_dispatches_with_the_session_metadata_and_arms_the_watchdog() -> None:
    rooms, ledger = FakeRooms(), FakeLedger()
    request = session_request().model_copy(update={"providers": ProviderChoice(llm="openai/gpt-4.1-mini")})
    outcome = await _dispatch(rooms, ledger, request)
    assert isinstance(outcome, SessionDispatched)
    assert (outcome.correlation_id, outcome.attempt) == (request.correlation_id, 1)
    metadata = AgentJobMetadata.model_validate_json(rooms.rooms[request.room_name])
    assert (metadata.session_id, metadata.greeting, metadata.org_id) == (request.session_id, "Hello", "org")
    assert metadata.providers == ProviderChoice(llm="openai/gpt-4.1-mini")
    record = ledger.records[request.session_id]
    assert (record.state, record.dispatch_id, record.attempt) == ("watching", outcome.dispatch_id, 1)
    assert ledger.deadlines[request.session_id] == 1010.0


async def test_redelivered_request_reuses_the_dispatch_and_keeps_the_watch() -> None:
    rooms, ledger, request = FakeRooms(), FakeLedger(), session_request()
    first = await _dispatch(rooms, ledger, request)
    ledger.deadlines[request.session_id] = 5.0  # the first watch's deadline must not be pushed back
    second = await _dispatch(rooms, ledger, request)
    assert isinstance(first, SessionDispatched) and isinstance(second, SessionDispatched)
    # the first made it with the room (its id unknown); the second found it by listing
    assert rooms.dispatches[request.room_name] == [second.dispatch_id] and first.dispatch_id == ""
    assert ledger.deadlines[request.session_id] == 5.0


async def test_session_already_over_is_not_dispatched() -> None:
    rooms, ledger, request = FakeRooms(), FakeLedger(), session_request()
    await ledger.close(request.session_id)  # ended before its request was consumed
    assert await _dispatch(rooms, ledger, request) is None
    assert rooms.rooms == {} and rooms.calls == 0
    assert ledger.records[request.session_id].room_name == request.room_name  # learnt, for clean-up


async def test_session_past_its_readiness_deadline_is_not_dispatched() -> None:
    rooms, ledger = FakeRooms(), FakeLedger()
    request = session_request().model_copy(update={"ready_deadline": datetime.fromtimestamp(999.0, UTC)})
    assert await _dispatch(rooms, ledger, request) is None  # the clock says 1000
    assert rooms.rooms == {} and rooms.calls == 0
    assert request.session_id not in ledger.deadlines
    assert ledger.records[request.session_id].room_name == request.room_name  # learnt, for clean-up


async def test_session_read_past_its_readiness_deadline_is_a_warning() -> None:
    """A skipped late request publishes nothing, so the log is all that shows a dispatcher behind its stream (at info,
    a burst slower than its sessions' deadline looked like a stall: the count stopped growing, nothing said why)."""
    request = session_request().model_copy(update={"ready_deadline": datetime.fromtimestamp(987.5, UTC)})
    with capture_logs() as logs:
        assert await _dispatch(FakeRooms(), FakeLedger(), request) is None  # the clock says 1000
    skipped = [e for e in logs if e["event"] == "dispatch_skipped"]
    assert len(skipped) == 1, logs
    assert skipped[0]["log_level"] == "warning"
    assert (skipped[0]["reason"], skipped[0]["late_s"]) == ("past its readiness deadline", 12.5)


async def test_agent_joined_before_the_dispatch_returned_is_not_watched() -> None:
    rooms, ledger, request = FakeRooms(), FakeLedger(), session_request()
    await ledger.remember(request.session_id, request.room_name, "{}", request.correlation_id)
    await ledger.mark_joined(request.session_id)
    assert isinstance(await _dispatch(rooms, ledger, request), SessionDispatched)
    assert request.session_id not in ledger.deadlines


async def test_transient_errors_are_retried_then_succeed() -> None:
    rooms = FakeRooms([TransientLiveKitError("503"), TransientLiveKitError("503")])
    outcome = await _dispatch(rooms, FakeLedger(), session_request())
    assert isinstance(outcome, SessionDispatched)
    assert rooms.calls == 3


async def test_transient_errors_are_bounded() -> None:
    rooms, ledger, request = FakeRooms([TransientLiveKitError("503")] * 10), FakeLedger(), session_request()
    outcome = await _dispatch(rooms, ledger, request)
    assert isinstance(outcome, SessionDispatchFailed)
    assert rooms.calls == FAST.attempts
    assert "after 4 attempts" in outcome.reason
    assert request.session_id not in ledger.deadlines


async def test_permanent_error_fails_at_once() -> None:
    rooms = FakeRooms([PermanentLiveKitError("permission_denied: the API key lacks roomCreate")])
    outcome = await _dispatch(rooms, FakeLedger(), session_request())
    assert isinstance(outcome, SessionDispatchFailed)
    assert rooms.calls == 1
    assert "roomCreate" in outcome.reason


async def test_the_first_try_creates_without_listing_and_any_later_one_lists_first() -> None:
    rooms, ledger, request = FakeRooms(), FakeLedger(), session_request()
    first = await _dispatch(rooms, ledger, request)
    assert isinstance(first, SessionDispatched) and rooms.listed == 0  # nobody tried before: nothing to find
    second = await _dispatch(rooms, ledger, request)  # redelivered
    assert isinstance(second, SessionDispatched) and rooms.listed == 1
    assert rooms.dispatches[request.room_name] == [second.dispatch_id]  # found, not made again


async def test_a_create_whose_answer_was_lost_is_found_by_the_retry() -> None:
    rooms, request = FakeRooms(), session_request()
    rooms.lost_creations = 1  # LiveKit made the room and its dispatch, the answer never came
    outcome = await _dispatch(rooms, FakeLedger(), request)
    assert isinstance(outcome, SessionDispatched)
    assert rooms.dispatches[request.room_name] == [outcome.dispatch_id]  # listed, found, not created twice
