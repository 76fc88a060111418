"""How each lifecycle event moves a session: plain rules on top of the contracts' status machine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
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

# The stages of a start-up, in order: the columns whose intervals the metrics observe
STARTUP_STAGES = ("requested_at", "dispatched_at", "agent_joined_at", "listener_subscribed_at", "ready_at")


@dataclass(frozen=True)
class StageTimes:
    """A session's start-up stage times (columns of :data:`STARTUP_STAGES`) before and after one recorded change."""

    org_id: str | None
    flow_id: str | None
    before: Mapping[str, datetime]
    after: Mapping[str, datetime]

    @classmethod
    def recorded_by(
        cls, change: StatusChange, stored: Mapping[str, datetime | None], org_id: object, flow_id: object
    ) -> StageTimes:
        """The times ``stored`` before ``change`` (read under the row lock) and after it: the first value wins."""
        before = {name: at for name, at in stored.items() if at is not None}
        after = dict(before)
        new = {**change.facts, **({change.stage: change.at} if change.stage else {})}
        for name in STARTUP_STAGES:
            value = new.get(name)
            if name not in after and isinstance(value, datetime):
                after[name] = value
        return cls(
            org_id=str(org_id) if org_id is not None else None,
            flow_id=str(flow_id) if flow_id is not None else None,
            before=before,
            after=after,
        )


StagesObserver = Callable[[StageTimes], None]


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
        self,
        change: StatusChange,
        announce: Callable[[Transition], SessionStatusChanged] | None = None,
        publish: Callable[[Sequence[SessionStatusChanged]], Awaitable[None]] | None = None,
        on_stages: StagesObserver | None = None,
    ) -> Transition | None:
        """Record the change's stage time and facts; move the status if the machine allows it. When it moves, its
        ``announce`` event is stored with it and given to ``publish`` once committed (if that fails, the outbox's
        sweep publishes it). ``on_stages`` gets the stage times once the change committed."""
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


class LifecycleObserver(Protocol):
    """Sees what the session store committed (the metrics): stage times and status moves."""

    def stages_recorded(self, times: StageTimes) -> None:
        """A change committed; ``times`` says which start-up stages it recorded first."""
        ...

    def status_moved(self, transition: Transition) -> None:
        """A status move committed."""
        ...


async def handle_event(
    event: Event, repo: SessionRepository, publisher: EventPublisher, observer: LifecycleObserver | None = None
) -> Transition | None:
    """Apply one event; announce the transition, once committed, when the status really moved (duplicates change
    nothing). A failed commit announces nothing; a failed announcement is published by the outbox's sweep
    (:mod:`services.session_store.outbox`): every recorded move is announced at least once, and only those are."""

    async def publish(events: Sequence[SessionStatusChanged]) -> None:
        for announcement in events:
            await publisher.publish(announcement)

    def announce(transition: Transition) -> SessionStatusChanged:
        return transition.announcement(event.correlation_id)

    if isinstance(event, UserPresenceChanged):
        await repo.record_presence(event.session_id, event.present, event.occurred_at, event.participant_sid)
        log.info("user_presence", present=event.present, source=event.source, identity=event.identity)
        return None
    on_stages = observer.stages_recorded if observer is not None else None
    transition = await repo.apply(change_for(event), announce, publish, on_stages)
    if transition is not None and observer is not None:
        observer.status_moved(transition)
    if transition is None:
        log.info("status_unchanged", message_id=event.message_id, event_type=getattr(event, "type", "?"))
        return None
    log.info("status_changed", from_status=transition.from_status, to_status=transition.to_status)
    return transition
