"""The dispatcher's handlers: plain functions of an event and the :class:`Dependencies`, and the table from stream to
handler. :mod:`services.dispatcher.app` builds the dependencies and subscribes each handler to its stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import structlog

from contracts.events import SessionRequested, SessionStatusChanged
from contracts.flow_events import FlowEvent
from contracts.streams import FLOW_EVENT, SESSION_REQUESTED, SESSION_STATUS_CHANGED
from services.dispatcher.cleanup import is_over, remove_room_of
from services.dispatcher.dispatch_gate import DispatchGate
from services.dispatcher.dispatching import dispatch_and_announce
from services.dispatcher.failure_notices import tell_if_dispatch_failed, tell_on_change
from services.dispatcher.flow_relay import DataSender, FlowSequencer, RoomWatchers, lifecycle_event, relay_flow_event
from services.dispatcher.metrics import count_outcome
from services.dispatcher.pacing import DispatchPacer
from services.dispatcher.ports import LiveKitRooms, RoomLocks, SessionLedger, SessionRecord
from services.dispatcher.retries import RetryPolicy
from services.dispatcher.room_sweep import LiveSessions, SweepPolicy
from services.dispatcher.status_changes import ChangeView, PortStatusChanges, StatusChanges
from services.dispatcher.watchdog import WatchdogPolicy, handle_due
from services.runtime.publishing import EventPublisher


class LiveKitServer(LiveKitRooms, DataSender, Protocol):
    """Everything the dispatcher asks of the LiveKit server API (rooms, dispatches, watchers, SendData, ListRooms)."""

    async def room_watchers(self, room_name: str) -> dict[str, str]:
        """Identity -> role of the room's watchers."""
        ...


@dataclass(frozen=True)
class Dependencies:
    """What the handlers use, built once by :func:`bootstrap`; ``closers`` run after the broker stopped."""

    rooms: LiveKitServer
    locks: RoomLocks
    ledger: SessionLedger
    publisher: EventPublisher
    watchers: RoomWatchers
    sequencer: FlowSequencer
    pacer: DispatchPacer
    retry: RetryPolicy
    relay_retry: RetryPolicy
    watchdog: WatchdogPolicy
    closers: tuple[Callable[[], Awaitable[None]], ...] = ()
    live: LiveSessions | None = None  # the room sweep's live sessions (None: no sweep)
    sweep: SweepPolicy = field(default_factory=SweepPolicy)
    changes: StatusChanges | None = None  # one round trip per status change (None: through the ports above)
    gate: DispatchGate | None = None  # lock and ledger around a dispatch in two round trips (None: the ports above)

    @property
    def status_changes(self) -> StatusChanges:
        """What applies a status change to the ledger and the live sessions."""
        if self.changes is not None:
            return self.changes
        return PortStatusChanges(self.ledger, self.watchers.is_watched, self.live)

    @property
    def tell_once(self) -> RetryPolicy:
        """One SendData attempt for a failure told at its source (the status change that follows tries again)."""
        return replace(self.relay_retry, attempts=1)


async def on_requested(request: SessionRequested, deps: Dependencies) -> None:
    """Create the room and exactly one dispatch (paced), then announce how it went."""
    with structlog.contextvars.bound_contextvars(session_id=request.session_id, correlation_id=request.correlation_id):
        # no longer than the session may wait for its agent at all
        async with deps.pacer.slot(max_wait_s=request.ready_deadline.timestamp() - time.time()):
            dispatched = await dispatch_and_announce(
                request, deps.rooms, deps.locks, deps.ledger, deps.retry, deps.watchdog, gate=deps.gate
            )
        outcome = dispatched.event
        count_outcome(outcome)
        await tell_if_dispatch_failed(outcome, request.room_name, deps.rooms, deps.ledger, deps.tell_once)
        if outcome is not None and not dispatched.published:  # the gate publishes a dispatch as it leaves
            await deps.publisher.publish(outcome)


async def _all(steps: list[Coroutine[Any, Any, None]]) -> None:
    """Run ``steps`` concurrently to their end; then raise the first failure, if any (the batch is retried)."""
    results = await asyncio.gather(*steps, return_exceptions=True)
    for failure in (r for r in results if isinstance(r, BaseException)):
        raise failure


async def on_status_changed(event: SessionStatusChanged, deps: Dependencies) -> None:
    """:func:`on_status_changes` of one change."""
    await on_status_changes([event], deps)


async def on_status_changes(events: list[SessionStatusChanged], deps: Dependencies) -> None:
    """Tell the rooms' watchers (in stream order) and the users of failures nobody told them, follow live sessions
    for the room sweep, and clean up the rooms and dispatches of sessions that are over (concurrently)."""
    # one round trip for the batch: records, rooms' watches, the sweep's tracking, terminal sessions' closes
    firsts = [event.occurred_at.timestamp() + deps.sweep.grace_s for event in events]
    views = await deps.status_changes.apply_all(events, firsts)
    try:
        over: list[tuple[SessionStatusChanged, ChangeView]] = []
        for event, view in zip(events, views, strict=True):
            # watchers see status changes as lifecycle flow events; unwatched rooms (most) skip it
            if view.watched and view.record is not None:
                flow = lifecycle_event(event, view.record.room_name)
                # in a batch, the change carries its own consumer span: the flow event continues that trace
                await deps.publisher.publish(flow.model_copy(update={"traceparent": event.traceparent}))
            if is_over(event):
                over.append((event, view))
        # the batch is retried if one fails (each step is idempotent); the others' clean-ups are done
        await _all([_clean_up(event, view, deps) for event, view in over])
    finally:
        # the room locks the changes took, in one round trip (also when the batch failed: it is retried)
        await deps.status_changes.release(views)


async def _clean_up(event: SessionStatusChanged, view: ChangeView, deps: Dependencies) -> None:
    with structlog.contextvars.bound_contextvars(session_id=event.session_id, correlation_id=event.correlation_id):
        await tell_on_change(event, view.record, deps.rooms, deps.ledger, deps.relay_retry)  # before the room goes
        await remove_room_of(event, view.record, deps.rooms, view.locks(deps.locks), deps.retry)


async def on_flow_event(event: FlowEvent, deps: Dependencies) -> None:
    """Relay a flow event to the watchers of its room allowed to see it."""
    with structlog.contextvars.bound_contextvars(session_id=event.session_id, correlation_id=event.correlation_id):
        await relay_flow_event(event, deps.watchers, deps.rooms, deps.sequencer, deps.relay_retry)


async def settle_due(record: SessionRecord, deps: Dependencies) -> None:
    """The watchdog's handler: re-dispatch (or give up on) a session whose agent did not join in time."""
    with structlog.contextvars.bound_contextvars(session_id=record.session_id, correlation_id=record.correlation_id):
        outcome = await handle_due(record, deps.rooms, deps.locks, deps.ledger, deps.retry, deps.watchdog)
        count_outcome(outcome)
        await tell_if_dispatch_failed(outcome, record.room_name, deps.rooms, deps.ledger, deps.tell_once)
        if outcome is not None:
            await deps.publisher.publish(outcome)


class Handler(Protocol):
    """A handler: the event (of its stream's type) and the dependencies (a batch handler: a list of events)."""

    def __call__(self, event: Any, /, deps: Dependencies) -> Awaitable[None]: ...


HANDLERS: Mapping[str, Handler] = {
    # each request on its own (max_workers at once): in a batch, one request held by the pacer or a LiveKit retry
    # would hold back every request read with it, and the stream behind them
    SESSION_REQUESTED: on_requested,
    FLOW_EVENT: on_flow_event,  # one at a time by default: a session's events reach watchers in order
}

BATCH_HANDLERS: Mapping[str, Handler] = {
    # consumed in batches (services.runtime.batch): one read, one XACK per batch. No agent.joined: the change to
    # agent_joined (or ready) the session store makes of it disarms the watchdog (dispatcher.status_changes)
    SESSION_STATUS_CHANGED: on_status_changes,  # a batch in one round trip, then what is over cleaned up
}
