"""How a batch of lifecycle events moves sessions: one transaction, its moves announced together once committed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

from contracts.events import Event, SessionStatusChanged, UserPresenceChanged
from services.runtime import tracing
from services.session_store.lifecycle import (
    LifecycleObserver,
    StageTimes,
    StatusChange,
    Transition,
    change_for,
)
from services.session_store.outbox import Publish

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Presence:
    """The user seen joining (``present``) or leaving the room at ``at``, as connection ``participant_sid``."""

    session_id: str
    present: bool
    at: datetime
    participant_sid: str


class BatchRepository(Protocol):
    """The storage port of the session store for batches."""

    async def apply_batch(
        self,
        changes: Sequence[StatusChange],
        presences: Sequence[Presence] = (),
        announce: Callable[[list[Transition | None]], list[SessionStatusChanged]] | None = None,
        publish: Publish | None = None,
        on_committed: Callable[[list[Transition | None], list[StageTimes]], None] | None = None,
    ) -> list[Transition | None]:
        """Apply the changes (in order) and the presences in one transaction; return each change's move or None.
        ``announce``'s events are stored with the moves and given to ``publish`` once they committed (if that fails,
        the outbox's sweep publishes them: :mod:`services.session_store.outbox`)."""
        ...


class Announcer(Protocol):
    """Publishes a batch's status changes at once (one Redis MULTI)."""

    async def publish_all(self, events: Sequence[SessionStatusChanged]) -> None:
        """Publish every event or none; raise if the broker did not take them."""
        ...


async def handle_events(
    events: Sequence[Event], repo: BatchRepository, announcer: Announcer, observer: LifecycleObserver | None = None
) -> list[Transition | None]:
    """Apply a batch of events in stream order, in one transaction; announce its moves once it committed.

    A failed commit announces nothing (the batch stays pending for a retry). A failed announcement leaves the moves
    recorded and their announcements in the outbox, which its sweep publishes: every recorded move is announced at
    least once, and only recorded moves are (:mod:`services.session_store.outbox`).
    """
    moving = [e for e in events if not isinstance(e, UserPresenceChanged)]
    presences = [
        Presence(e.session_id, e.present, e.occurred_at, e.participant_sid)
        for e in events
        if isinstance(e, UserPresenceChanged)
    ]
    changes = [change_for(e) for e in moving]

    def announce(transitions: list[Transition | None]) -> list[SessionStatusChanged]:
        return [
            _announcement(transition, event)
            for transition, event in zip(transitions, moving, strict=True)
            if transition is not None
        ]

    def committed(transitions: list[Transition | None], times: list[StageTimes]) -> None:
        if observer is not None:
            for each in times:
                observer.stages_recorded(each)
        _committed(events, moving, transitions, observer)

    return await repo.apply_batch(changes, presences, announce, announcer.publish_all, committed)


def _committed(
    events: Sequence[Event],
    moving: Sequence[Event],
    transitions: list[Transition | None],
    observer: LifecycleObserver | None,
) -> None:
    """Log (and show the observer) what a committed batch did."""
    for event in events:
        if isinstance(event, UserPresenceChanged):
            log.debug("user_presence", session_id=event.session_id, correlation_id=event.correlation_id,
                      present=event.present, source=event.source, identity=event.identity)  # fmt: skip
    moves = []
    for transition, event in zip(transitions, moving, strict=True):
        ids = {"session_id": event.session_id, "correlation_id": event.correlation_id}
        if transition is None:
            log.debug("status_unchanged", **ids, message_id=event.message_id, event_type=getattr(event, "type", "?"))
            continue
        if observer is not None:
            observer.status_moved(transition)
        log.debug("status_changed", **ids, from_status=transition.from_status, to_status=transition.to_status)
        moves.append(f"{event.session_id}:{transition.from_status or ''}>{transition.to_status}")
    if moves:  # one line per batch at info (a line per move cost more CPU than the move): session:from>to each
        log.info("statuses_changed", moves=moves)


def _announcement(transition: Transition, event: Event) -> SessionStatusChanged:
    """The move's announcement, in the trace of the event that caused it (its consumer span, when tracing is on)."""
    announcement = transition.announcement(event.correlation_id)
    if tracing.enabled() and event.traceparent:
        return announcement.model_copy(update={"traceparent": event.traceparent})
    return announcement
