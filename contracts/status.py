"""The session status machine as data: statuses, their order, terminal set and allowed moves."""

from __future__ import annotations

from enum import StrEnum


class SessionStatus(StrEnum):
    """Where a session is in its life."""

    PENDING = "pending"
    DISPATCHED = "dispatched"
    AGENT_JOINED = "agent_joined"
    READY = "ready"
    ENDED = "ended"
    FAILED = "failed"
    EXPIRED = "expired"


# The happy path, in order. Events may arrive out of order, so a move is allowed whenever it goes
# forward along this path: agent.ready before session.dispatched still ends at ready.
PROGRESSION: tuple[SessionStatus, ...] = (
    SessionStatus.PENDING,
    SessionStatus.DISPATCHED,
    SessionStatus.AGENT_JOINED,
    SessionStatus.READY,
    SessionStatus.ENDED,
)

TERMINAL: frozenset[SessionStatus] = frozenset({SessionStatus.ENDED, SessionStatus.FAILED, SessionStatus.EXPIRED})

# Reachable from any non-terminal status.
ABORTS: frozenset[SessionStatus] = frozenset({SessionStatus.FAILED, SessionStatus.EXPIRED, SessionStatus.ENDED})


def _allowed_from(current: SessionStatus) -> frozenset[SessionStatus]:
    if current in TERMINAL:
        return frozenset()
    later = PROGRESSION[PROGRESSION.index(current) + 1 :]
    return frozenset(later) | ABORTS


TRANSITIONS: dict[SessionStatus, frozenset[SessionStatus]] = {s: _allowed_from(s) for s in SessionStatus}


def can_transition(current: SessionStatus | None, target: SessionStatus) -> bool:
    """Tell whether a session at ``current`` (None: not seen yet) may move to ``target``."""
    if current is None:
        return True
    return target in TRANSITIONS[current]
