"""Request and response bodies of the HTTP API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from contracts.flow_events import WatcherRole


class ApiModel(BaseModel):
    """Base: camelCase JSON, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


PROVIDER_FORMS = (
    "a LiveKit Inference model (provider/model, e.g. deepgram/nova-3) or an installed livekit-agents plugin "
    "(plugin or plugin:model, e.g. openai:gpt-4.1-mini)"
)


class FlowAgentSettings(ApiModel):
    """What the agent worker needs to run the flow: provider names and the readiness deadline."""

    stt: str | None = Field(default=None, min_length=1, max_length=100, description=PROVIDER_FORMS)
    llm: str | None = Field(default=None, min_length=1, max_length=100, description=PROVIDER_FORMS)
    tts: str | None = Field(
        default=None, min_length=1, max_length=100, description=PROVIDER_FORMS + "; built in: espeak, silence"
    )
    vad: str | None = Field(default=None, min_length=1, max_length=100, description="a plugin, e.g. silero")
    voice: str | None = Field(default=None, min_length=1, max_length=100, description="the TTS voice")
    language: str | None = Field(default=None, min_length=1, max_length=35)
    ready_timeout_s: float | None = Field(
        default=None, gt=0, le=600, description="seconds the agent has to become ready (default: the API's setting)"
    )
    max_duration_s: float | None = Field(
        default=None,
        gt=0,
        le=86_400,
        description="a session of this flow ends this long after it was requested (default: the session store's, 2 h)",
    )


class FlowCreate(ApiModel):
    """Body of ``POST /api/flows``."""

    name: str = Field(min_length=1, max_length=200)
    greeting: str = Field(min_length=1, max_length=2000)
    definition: dict[str, Any] = Field(default_factory=dict, description="free-form flow definition (JSON object)")
    agent_settings: FlowAgentSettings = Field(default_factory=FlowAgentSettings)


class FlowUpdate(ApiModel):
    """Body of ``PATCH /api/flows/{flow_id}``: only the fields given change."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    greeting: str | None = Field(default=None, min_length=1, max_length=2000)
    definition: dict[str, Any] | None = None
    agent_settings: FlowAgentSettings | None = None


class FlowOut(ApiModel):
    """A flow as the API shows it."""

    id: str
    name: str
    greeting: str
    definition: dict[str, Any]
    agent_settings: FlowAgentSettings
    created_at: datetime
    updated_at: datetime


class FlowList(ApiModel):
    """Answer of ``GET /api/flows``."""

    flows: list[FlowOut]


class SessionCreated(ApiModel):
    """Answer of ``POST /api/flows/{flow_id}/sessions``: everything the frontend needs to join."""

    session_id: str
    room_name: str
    token: str
    livekit_url: str
    status: str = "pending"
    ready_deadline: datetime
    client_token: str = Field(
        description="a short-lived token for this session only: GET /api/sessions/{id}, its events "
        "(also as ?access_token=) and DELETE; safe to hand to a browser"
    )


class SessionStages(ApiModel):
    """When each stage was reached (null: not yet)."""

    requested: datetime | None = None
    dispatched: datetime | None = None
    agent_joined: datetime | None = None
    listener_subscribed: datetime | None = Field(default=None, description="the user subscribed to the agent's audio")
    greeting_started: datetime | None = None
    greeting_finished: datetime | None = Field(default=None, description="the greeting's playout ended")
    ready: datetime | None = None
    ended: datetime | None = None


class SessionOut(ApiModel):
    """A session's status as the API shows it."""

    session_id: str
    status: str
    reason: str | None = None
    end_code: str | None = Field(default=None, description="why a terminal status was reached (a stable code)")
    flow_id: str | None = None
    room_name: str | None = None
    ready_deadline: datetime | None = None
    stages: SessionStages


class StatusEvent(ApiModel):
    """One Server-Sent Event of ``GET /api/sessions/{id}/events``: the session's status from now on."""

    session_id: str
    status: str
    reason: str | None = None
    end_code: str | None = Field(default=None, description="why a terminal status was reached (a stable code)")
    at: datetime


class FlowInit(ApiModel):
    """Answer of the agent's ``POST /internal/sessions/{id}/flow-init``: what it needs to run the flow."""

    session_id: str
    flow_id: str
    greeting: str
    definition: dict[str, Any]
    agent_settings: FlowAgentSettings


class ErrorBody(ApiModel):
    """Every error answer: what is wrong, and details where there are several problems."""

    error: str
    detail: list[dict[str, object]] | None = None


class WatchRequest(ApiModel):
    """Body of ``POST /api/sessions/{session_id}/watch``."""

    role: WatcherRole = Field(description="what the watcher may see on topic flow-events: monitor < supervisor < admin")


class WatchToken(ApiModel):
    """A listen-only token for one session's room, for a watcher of ``role``."""

    session_id: str
    room_name: str
    identity: str
    role: WatcherRole
    token: str
    livekit_url: str
    topic: str = Field(description="the data-channel topic the flow events arrive on")


class StageLatencyOut(ApiModel):
    """One start-up stage over the window (milliseconds; null when no session reached both ends)."""

    start: str = Field(description="stage time it starts at, e.g. requested")
    end: str = Field(description="stage time it ends at, e.g. dispatched")
    sessions: int = Field(description="sessions that reached both ends")
    p50_ms: float | None
    p95_ms: float | None


class StageLatenciesOut(ApiModel):
    """Per-stage p50/p95 of the organisation's sessions requested in the last ``minutes``."""

    minutes: float
    sessions: int
    ready: int
    stages: list[StageLatencyOut]


class PresenceOut(ApiModel):
    """Whether the agent is in the session's room now, as LiveKit answered a moment ago."""

    session_id: str
    room_name: str
    room_exists: bool = Field(description="false: LiveKit has no such room (never created, or closed)")
    in_room: bool
    agent_identity: str | None
    joined_at: datetime | None = Field(description="when the agent joined the room")
    state: str | None = Field(description="LiveKit's lk.agent.state: initializing, listening, thinking, speaking")
    participants: int = Field(description="everyone in the room, the agent included")
    agents: int = Field(description="agent participants (more than one: a duplicate dispatch)")
    session_status: str
