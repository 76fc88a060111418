"""Turn a session request into a room and exactly one agent dispatch, with bounded retries."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_exponential_jitter

from contracts.events import Event, SessionDispatched, SessionDispatchFailed, SessionRequested
from contracts.job import AgentJobMetadata
from services.dispatcher.ports import LiveKitRooms, PermanentLiveKitError, RoomLocks, TransientLiveKitError

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for transient LiveKit failures: attempts and total time, exponential backoff with jitter."""

    attempts: int = 5
    max_seconds: float = 20.0
    initial_s: float = 0.1


def job_metadata(request: SessionRequested) -> AgentJobMetadata:
    """The metadata the agent reads from its job."""
    return AgentJobMetadata(
        sessionId=request.session_id,
        flowId=request.flow_id,
        orgId=request.org_id,
        roomName=request.room_name,
        greeting=request.greeting,
        correlationId=request.correlation_id,
    )


async def dispatch_session(
    request: SessionRequested, rooms: LiveKitRooms, locks: RoomLocks, policy: RetryPolicy
) -> Event:
    """Create the room and the dispatch under the room's lock; return the event that tells how it went."""
    metadata = job_metadata(request).to_json()
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.max_seconds),
        wait=wait_exponential_jitter(multiplier=policy.initial_s, max=policy.max_seconds / 4, jitter=policy.initial_s),
        retry=retry_if_exception_type(TransientLiveKitError),
        reraise=True,
    )
    try:
        async with locks.hold(request.room_name):
            async for attempt in retrying:
                with attempt:
                    await rooms.ensure_room(request.room_name, metadata)
                    dispatch_id = await rooms.ensure_dispatch(request.room_name, metadata)
    except PermanentLiveKitError as exc:
        log.warning("dispatch_failed", reason=str(exc), permanent=True)
        return _failed(request, str(exc))
    except TransientLiveKitError as exc:
        reason = f"LiveKit still unavailable after {policy.attempts} attempts / {policy.max_seconds:g}s: {exc}"
        log.warning("dispatch_failed", reason=reason, permanent=False)
        return _failed(request, reason)
    log.info("dispatched", room=request.room_name, dispatch_id=dispatch_id)
    return SessionDispatched(
        session_id=request.session_id,
        correlation_id=request.correlation_id,
        room_name=request.room_name,
        dispatch_id=dispatch_id,
    )


def _failed(request: SessionRequested, reason: str) -> SessionDispatchFailed:
    return SessionDispatchFailed(session_id=request.session_id, correlation_id=request.correlation_id, reason=reason)
