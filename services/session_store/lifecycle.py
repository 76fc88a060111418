"""How each lifecycle event moves a session: plain rules on top of the contracts' status machine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from contracts.endings import EndCode
from contracts.events import (
    AgentFailed,
    AgentJobEnded,
    AgentJoined,
    AgentReady,
    Event,
    SessionDispatched,
    SessionDispatchFailed,
    SessionEndRequested,
    SessionRequested,
    SessionStageTimes,
    SessionStatusChanged,
    UserPresenceChanged,
)
from contracts.status import SessionStatus
from services.runtime.publishing import EventPublisher

log = structlog.get_logger(__name__)

# agent.ready's times of the greeting, each kept in the session's column of the same name
GREETING_STAGES = ("listener_subscribed_at", "greeting_started_at", "greeting_finished_at")
# every stage time of a session, each a column of the same name; announced with each status change
STAGE_TIMES = tuple(SessionStageTimes.model_fields)


@dataclass(frozen=True)
class StatusChange:
    """What an event asks of a session: a target status, the stage time to record, facts it carries."""

    session_id: str
    target: SessionStatus
    at: datetime
    stage: str | None = None
    reason: str | None = None
    facts: dict[str, object] = field(default_factory=dict)
    code: EndCode | None = None  # why a terminal status is reached


@dataclass(frozen=True)
class Transition:
    """A status move that really happened."""

    session_id: str
    org_id: str | None
    from_status: SessionStatus | None
    to_status: SessionStatus
    reason: str | None
    correlation_id: str | None = None
    code: EndCode | None = None
    stages: SessionStageTimes | None = None  # the session's stage times with this move

    def announcement(self, fallback_correlation_id: str) -> SessionStatusChanged:
        """The ``session.status_changed`` event for this move (its own correlation id, else the fallback)."""
        return SessionStatusChanged(
            session_id=self.session_id,
            correlation_id=self.correlation_id or fallback_correlation_id,
            org_id=self.org_id,
            from_status=self.from_status,
            to_status=self.to_status,
            reason=self.reason,
            code=self.code,
            stages=self.stages,
        )


class SessionRepository(Protocol):
    """The storage port of the session store."""

    async def apply(
        self, change: StatusChange, before_commit: Callable[[Transition], Awaitable[None]] | None = None
    ) -> Transition | None:
        """Record the change's stage time and facts; move the status if the machine allows it. ``before_commit``
        runs inside the transaction when the status moves: if it raises, nothing is recorded."""
        ...

    async def record_presence(self, session_id: str, present: bool, at: datetime, participant_sid: str) -> None:
        """Remember when (and as which connection) the user was last seen joining (``present``) or leaving; never
        moves the status."""
        ...


def change_for(event: Event) -> StatusChange:
    """Translate a lifecycle event into the status change it asks for."""
    sid, at = event.session_id, event.occurred_at
    match event:
        case SessionRequested():
            facts: dict[str, object] = {
                "org_id": event.org_id,
                "flow_id": event.flow_id,
                "room_name": event.room_name,
                "ready_deadline": event.ready_deadline,
                "correlation_id": event.correlation_id,
            }
            if event.max_duration_s is not None:
                facts["end_deadline"] = event.occurred_at + timedelta(seconds=event.max_duration_s)
            return StatusChange(sid, SessionStatus.PENDING, at, "requested_at", facts=facts)
        case SessionDispatched():
            return StatusChange(
                sid, SessionStatus.DISPATCHED, at, "dispatched_at", facts={"room_name": event.room_name}
            )
        case AgentJoined():
            return StatusChange(sid, SessionStatus.AGENT_JOINED, at, "agent_joined_at")
        case AgentReady():
            heard = {name: getattr(event, name) for name in GREETING_STAGES if getattr(event, name) is not None}
            return StatusChange(sid, SessionStatus.READY, at, "ready_at", facts=heard)
        case AgentFailed():
            # The agent waited for the user in vain: the same end as a ready session nobody joined.
            code = EndCode.NO_USER_JOINED if event.stage == "wait_for_user" else EndCode.AGENT_FAILED
            return StatusChange(
                sid, SessionStatus.FAILED, at, "ended_at", reason=f"agent {event.stage}: {event.reason}", code=code
            )
        case SessionDispatchFailed():
            return StatusChange(
                sid,
                SessionStatus.FAILED,
                at,
                "ended_at",
                reason=f"dispatch: {event.reason}",
                code=EndCode.DISPATCH_FAILED,
            )
        case SessionEndRequested():
            return StatusChange(sid, SessionStatus.ENDED, at, "ended_at", reason=event.reason, code=event.code)
        case AgentJobEnded():
            failed = not event.was_ready or event.code in (EndCode.AGENT_CRASHED, EndCode.AGENT_FAILED)
            target = SessionStatus.FAILED if failed else SessionStatus.ENDED
            return StatusChange(sid, target, at, "ended_at", reason=event.reason, code=event.code)
    raise ValueError(f"the session store does not handle {type(event).__name__}")


async def handle_event(event: Event, repo: SessionRepository, publisher: EventPublisher) -> Transition | None:
    """Apply one event; announce the transition when the status really moved (duplicates change nothing).

    The announcement is published before the status change commits: if publishing fails, the change rolls back
    and the event stays pending for a retry, so a status change is never recorded without being announced
    (at worst it is announced twice, which every consumer of ``session.status_changed`` tolerates).
    """

    async def announce(transition: Transition) -> None:
        await publisher.publish(transition.announcement(event.correlation_id))

    if isinstance(event, UserPresenceChanged):
        await repo.record_presence(event.session_id, event.present, event.occurred_at, event.participant_sid)
        log.info("user_presence", present=event.present, source=event.source, identity=event.identity)
        return None
    transition = await repo.apply(change_for(event), before_commit=announce)
    if transition is None:
        log.info("status_unchanged", message_id=event.message_id, event_type=getattr(event, "type", "?"))
        return None
    log.info("status_changed", from_status=transition.from_status, to_status=transition.to_status)
    return transition
