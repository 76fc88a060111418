"""Flow events: what watchers (monitor / supervisor / admin) see of a session, on data-channel topic ``flow-events``.

Two shapes, one format:

- :class:`FlowEvent` travels on the broker (stream ``agentready:flow.event``). The agent publishes its
  stage, flow and error events; the dispatcher turns every ``session.status_changed`` into a
  ``lifecycle`` event. Its ``data`` is visible to every watcher, ``details`` to supervisors and admins,
  ``error`` to admins only.
- :class:`FlowEventPayload` is what the dispatcher sends into the room with the server API's
  ``SendData`` (topic ``flow-events``, reliable), to the watchers whose role may see it, projected per
  role by :func:`project`. ``seq`` is assigned by the relay, per session, increasing in send order;
  a repeated ``seq`` is a redelivery (drop it).

Who sees which kind: ``lifecycle`` and ``stage`` -> monitor, supervisor, admin; ``flow`` -> supervisor,
admin; ``error`` -> admin. Watchers are the participants whose attribute ``agentready.role`` names a role.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from contracts.events import Event

FLOW_EVENT_VERSION = 1
ROLE_ATTRIBUTE = "agentready.role"

WatcherRole = Literal["monitor", "supervisor", "admin"]
FlowEventKind = Literal["lifecycle", "stage", "flow", "error"]
WATCHER_ROLES: tuple[str, ...] = get_args(WatcherRole)

# The kinds each role receives, and which gated parts of an event it sees.
VISIBLE_KINDS: dict[str, frozenset[str]] = {
    "monitor": frozenset({"lifecycle", "stage"}),
    "supervisor": frozenset({"lifecycle", "stage", "flow"}),
    "admin": frozenset({"lifecycle", "stage", "flow", "error"}),
}
SEES_DETAILS = frozenset({"supervisor", "admin"})
SEES_ERRORS = frozenset({"admin"})


def watcher_role(attributes: Mapping[str, str]) -> str | None:
    """The watcher role a participant's attributes carry, or None for users and agents."""
    role = attributes.get(ROLE_ATTRIBUTE)
    return role if role in WATCHER_ROLES else None


def is_watcher(attributes: Mapping[str, str]) -> bool:
    """Whether a participant is a watcher (any value of the role attribute counts: never the user)."""
    return ROLE_ATTRIBUTE in attributes


class FlowEvent(Event):
    """One flow-execution or lifecycle event of a session, as published to the broker."""

    type: Literal["flow.event"] = "flow.event"
    room_name: str
    kind: FlowEventKind
    name: str  # e.g. "stage.started", "stage.finished", "flow.initialised", "greeting.spoken", "session.ready"
    data: dict[str, Any] = Field(default_factory=dict)  # every watcher
    details: dict[str, Any] = Field(default_factory=dict)  # supervisors and admins
    error: dict[str, Any] = Field(default_factory=dict)  # admins


class FlowEventPayload(BaseModel):
    """The ``flow-events`` message one watcher receives (``details`` / ``error`` only if its role sees them)."""

    model_config = ConfigDict(extra="forbid")

    version: int = FLOW_EVENT_VERSION
    type: Literal["flow.event"] = "flow.event"
    sessionId: str
    seq: int
    kind: FlowEventKind
    name: str
    timestamp: str  # ISO-8601 UTC, when the event happened
    data: dict[str, Any]
    details: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def to_bytes(self) -> bytes:
        """Serialise compactly; parts the role may not see are left out, not sent empty."""
        return self.model_dump_json(exclude_none=True).encode()


def iso_utc_ms(event: FlowEvent) -> str:
    """The event's time as ISO-8601 UTC with milliseconds and a ``Z``."""
    return event.occurred_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def project(event: FlowEvent, role: str, seq: int) -> FlowEventPayload | None:
    """What ``role`` may see of ``event`` (numbered ``seq``), or None when its kind is not for that role."""
    if event.kind not in VISIBLE_KINDS.get(role, frozenset()):
        return None
    return FlowEventPayload(
        sessionId=event.session_id,
        seq=seq,
        kind=event.kind,
        name=event.name,
        timestamp=iso_utc_ms(event),
        data=dict(event.data),
        details=dict(event.details) if role in SEES_DETAILS and event.details else None,
        error=dict(event.error) if role in SEES_ERRORS and event.error else None,
    )
