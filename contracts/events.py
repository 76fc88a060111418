"""Lifecycle events exchanged over Redis Streams, each wrapped in the same envelope fields."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.endings import EndCode
from contracts.providers import ProviderChoice

SCHEMA_VERSION = 1

SessionId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def utc_now() -> datetime:
    """Return the current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def new_message_id() -> str:
    """Return a fresh, globally unique message id."""
    return uuid.uuid4().hex


class Event(BaseModel):
    """Envelope shared by every event: identity, time, schema version and correlation."""

    # A tolerant reader: during a rolling deploy an older consumer meets events with fields added since it was
    # built; refusing them would dead-letter every such message. New fields always come with a default.
    model_config = ConfigDict(extra="ignore", frozen=True)

    message_id: str = Field(default_factory=new_message_id)
    occurred_at: datetime = Field(default_factory=utc_now)
    schema_version: int = SCHEMA_VERSION
    correlation_id: str = Field(default_factory=new_message_id)
    session_id: SessionId
    # W3C trace context (``traceparent``) of the span that published this event, "" when tracing is off: every
    # consumer continues the session's one trace from it (services.runtime.tracing).
    traceparent: str = ""


class SessionRequested(Event):
    """A frontend asked for an agent session; nothing has been created in LiveKit yet."""

    type: Literal["session.requested"] = "session.requested"
    org_id: str
    flow_id: str
    room_name: str
    greeting: str
    ready_deadline: datetime
    agent_credential: str = ""  # short-lived JWT the agent shows the API (flow init); "" in older messages
    max_duration_s: float | None = None  # the flow's maximum session duration; None: the session store's default
    providers: ProviderChoice = Field(default_factory=ProviderChoice)  # the flow's STT/LLM/TTS/VAD for the agent


class SessionDispatched(Event):
    """The room exists and exactly one agent dispatch was created for it."""

    type: Literal["session.dispatched"] = "session.dispatched"
    room_name: str
    dispatch_id: str  # "": made with the room (CreateRoom's agents), whose answer does not name the dispatch
    attempt: int = 1


class SessionDispatchFailed(Event):
    """The dispatcher gave up creating the room or the dispatch (``code``: a FAILURE_* of contracts.datachannel)."""

    type: Literal["session.dispatch_failed"] = "session.dispatch_failed"
    reason: str
    code: str = "dispatch_failed"


class AgentJoined(Event):
    """An agent worker accepted the job and started its readiness pipeline."""

    type: Literal["agent.joined"] = "agent.joined"
    room_name: str
    job_id: str


class AgentReady(Event):
    """The agent spoke its greeting and is ready for the user; timings in milliseconds per stage."""

    type: Literal["agent.ready"] = "agent.ready"
    greeting: str
    stage_timings_ms: dict[str, float] = Field(default_factory=dict)
    # When the user could first hear the agent and when its greeting played (null from agents before these).
    listener_subscribed_at: datetime | None = None
    greeting_started_at: datetime | None = None
    greeting_finished_at: datetime | None = None


class AgentFailed(Event):
    """The agent could not become ready: which stage failed and why."""

    type: Literal["agent.failed"] = "agent.failed"
    stage: str
    reason: str


class SessionEndRequested(Event):
    """Someone (a user, ops, LiveKit's ``room_finished`` webhook) asked to end the session."""

    type: Literal["session.end_requested"] = "session.end_requested"
    reason: str = "ended by request"
    code: EndCode = EndCode.ENDED_BY_REQUEST


class AgentJobEnded(Event):
    """The agent's job for this session ended (for any reason): the session is over."""

    type: Literal["agent.job_ended"] = "agent.job_ended"
    job_id: str
    code: EndCode
    reason: str
    was_ready: bool  # whether the job had made the session ready: a job that ends before that fails the session


class UserPresenceChanged(Event):
    """The session's user joined or left its room, as the agent or a LiveKit webhook saw it (at ``occurred_at``)."""

    type: Literal["session.user_presence_changed"] = "session.user_presence_changed"
    room_name: str
    identity: str
    participant_sid: str = ""  # LiveKit's id of this connection ("" from the agent): a reconnect gets a new one
    present: bool
    source: Literal["agent", "livekit"]


class SessionStageTimes(BaseModel):
    """When a session reached each stage, as the session store recorded it (null: not yet)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    requested_at: datetime | None = None
    dispatched_at: datetime | None = None
    agent_joined_at: datetime | None = None
    listener_subscribed_at: datetime | None = None  # the user subscribed to the agent's audio
    greeting_started_at: datetime | None = None
    greeting_finished_at: datetime | None = None  # the greeting's playout ended
    ready_at: datetime | None = None
    ended_at: datetime | None = None


class SessionStatusChanged(Event):
    """The session store moved a session from one status to another."""

    type: Literal["session.status_changed"] = "session.status_changed"
    org_id: str | None = None
    from_status: str | None
    to_status: str
    reason: str | None = None
    code: EndCode | None = None  # why a terminal status was reached
    stages: SessionStageTimes | None = None  # the stage times with this change (null from older session stores)


ALL_EVENTS: tuple[type[Event], ...] = (
    SessionRequested,
    SessionDispatched,
    SessionDispatchFailed,
    AgentJoined,
    AgentReady,
    AgentFailed,
    SessionEndRequested,
    SessionStatusChanged,
    AgentJobEnded,
    UserPresenceChanged,
)


LifecycleEvent = Annotated[
    SessionRequested
    | SessionDispatched
    | SessionDispatchFailed
    | AgentJoined
    | AgentReady
    | AgentFailed
    | SessionEndRequested
    | AgentJobEnded
    | UserPresenceChanged,
    Field(discriminator="type"),
]
"""Any event the session store applies to a session's status."""


def event_type(model: type[Event]) -> str:
    """Return the dotted event name of an event model, e.g. ``session.requested``."""
    default = model.model_fields["type"].default
    assert isinstance(default, str)
    return default
