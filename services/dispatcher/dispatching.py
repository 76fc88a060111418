"""Turn a session request into a room and exactly one agent dispatch (see :mod:`services.dispatcher.dispatch_dedup`),
with bounded retries, and arm the watchdog that notices when no agent joins."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from contracts.events import Event, SessionDispatched, SessionDispatchFailed, SessionRequested
from contracts.job import AgentJobMetadata
from services.dispatcher.dispatch_dedup import ensure_single_dispatch
from services.dispatcher.dispatch_gate import DispatchGate, LockedLedgerGate, SessionSeen
from services.dispatcher.dispatch_state import DispatchState
from services.dispatcher.ports import (
    LiveKitRooms,
    PermanentLiveKitError,
    RoomLocks,
    SessionLedger,
    TransientLiveKitError,
)
from services.dispatcher.retries import RetryPolicy, with_retries
from services.dispatcher.watchdog import WatchdogPolicy
from services.runtime import tracing

log = structlog.get_logger(__name__)


def job_metadata(request: SessionRequested) -> AgentJobMetadata:
    """The metadata the agent reads from its job."""
    return AgentJobMetadata(
        session_id=request.session_id,
        flow_id=request.flow_id,
        org_id=request.org_id,
        room_name=request.room_name,
        greeting=request.greeting,
        correlation_id=request.correlation_id,
        credential=request.agent_credential,
        providers=request.providers,
        traceparent=tracing.current_traceparent() or request.traceparent,  # the agent's spans join the session's trace
    )


@dataclass(frozen=True)
class Dispatched:
    """How a dispatch went: the event that tells it (None: nothing to tell), and whether the gate published it."""

    event: Event | None
    published: bool = False


async def dispatch_and_announce(
    request: SessionRequested,
    rooms: LiveKitRooms,
    locks: RoomLocks,
    ledger: SessionLedger,
    retry: RetryPolicy,
    watchdog: WatchdogPolicy,
    clock: Callable[[], float] = time.time,
    gate: DispatchGate | None = None,
) -> Dispatched:
    """Create the room and the dispatch under the room's lock and arm the watchdog before the lock goes; tell how it
    went (event None for a session already over: nothing is created for it). ``gate`` (default: the lock and the
    ledger, one step each) takes the lock and remembers the session; it publishes the ``session.dispatched`` as it
    releases the lock when it can (one round trip for the watch, the release and the XADD): the caller publishes an
    event it did not."""
    metadata = job_metadata(request).to_json()
    deadline = request.ready_deadline.timestamp()
    seen = SessionSeen(request.session_id, request.room_name, metadata, request.correlation_id, deadline)
    try:
        async with (gate or LockedLedgerGate(locks, ledger)).enter(seen) as entry:
            # Under the lock, so a clean-up that closed the session has finished, or will see our dispatch.
            if entry.state == DispatchState.CLOSED:
                log.info("dispatch_skipped", reason="session already over")
                return Dispatched(None)
            late_s = clock() - deadline
            if late_s >= 0:
                # read late (a backlog): the session store expires it; an agent sent now would only be cleaned up.
                # A warning, not info: the session expires without an agent, and this dispatcher fell behind its stream.
                log.warning("dispatch_skipped", reason="past its readiness deadline", late_s=round(late_s, 3))
                return Dispatched(None)
            # Nobody tried before (the count is kept under this lock): nothing of the session exists, so its room and
            # dispatch are made without ListDispatch (with the room: one call). Any later try lists first: a call
            # whose answer was lost may have made one. (An empty agent name would match the dispatch every new room
            # gets.)
            unlisted = entry.tries_before == 0 and bool(rooms.agent_name)

            async def create() -> str:
                nonlocal unlisted
                if unlisted:
                    unlisted = False
                    return await rooms.create_room_and_dispatch(request.room_name, metadata)
                await rooms.ensure_room(request.room_name, metadata)
                return await ensure_single_dispatch(rooms, request.room_name, metadata)

            dispatch_id = await with_retries(retry, create)
            now = clock()
            entry.arm(dispatch_id, 1, now + watchdog.join_timeout(1, now, deadline))
            dispatched = SessionDispatched(
                session_id=request.session_id,
                correlation_id=request.correlation_id,
                room_name=request.room_name,
                dispatch_id=dispatch_id,
            )
            entry.announce(dispatched)
    except PermanentLiveKitError as exc:
        log.warning("dispatch_failed", reason=str(exc), permanent=True)
        return Dispatched(_failed(request, str(exc)))
    except TransientLiveKitError as exc:
        reason = f"LiveKit still unavailable after {retry.describe()}: {exc}"
        log.warning("dispatch_failed", reason=reason, permanent=False)
        return Dispatched(_failed(request, reason))
    log.info("dispatched", room=request.room_name, dispatch_id=dispatch_id or None, watchdog_armed=entry.armed)
    return Dispatched(dispatched, published=entry.announced)


def _failed(request: SessionRequested, reason: str) -> SessionDispatchFailed:
    return SessionDispatchFailed(session_id=request.session_id, correlation_id=request.correlation_id, reason=reason)
