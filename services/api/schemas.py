"""Request and response bodies of the HTTP API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, WithJsonSchema, field_validator
from pydantic.alias_generators import to_camel

from contracts.flow_events import WatcherRole
from services.api.storable import FREE_JSON_RULES, STORABLE_PATTERN, check_free_json, check_text


class ApiModel(BaseModel):
    """Base: camelCase JSON, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


PROVIDER_FORMS = (
    "a LiveKit Inference model (provider/model, e.g. deepgram/nova-3) or an installed livekit-agents plugin "
    "(plugin or plugin:model, e.g. openai:gpt-4.1-mini)"
)


def _document_storable(schema: dict[str, Any]) -> None:
    """Give every string property of a request body's JSON Schema the storable pattern (clients and fuzzers see it)."""
    for prop in schema.get("properties", {}).values():
        for option in (prop, *prop.get("anyOf", ())):
            if option.get("type") == "string" and "pattern" not in option and "enum" not in option:
                option["pattern"] = STORABLE_PATTERN


class RequestModel(ApiModel):
    """Base of request bodies: every string field, at any depth, must be storable (no NUL, no lone surrogate)."""

    model_config = ConfigDict(json_schema_extra=_document_storable)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: object, _info: ValidationInfo) -> object:
        # Every field of every request body, present and future: a str, or a list of them; free-form JSON is checked
        # by its own type (FreeJson), nested models by their own validators.
        for text in value if isinstance(value, list | tuple) else (value,):
            if isinstance(text, str):
                check_text(text)
        return value


FREE_JSON_VALUE = "FreeJsonValue"
"""The OpenAPI component (added by :mod:`services.api.openapi`) describing any value inside a free-form object."""

FreeJson = Annotated[
    dict[str, Any],
    AfterValidator(check_free_json),
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": {"pattern": STORABLE_PATTERN},
            "additionalProperties": {"$ref": f"#/components/schemas/{FREE_JSON_VALUE}"},
        }
    ),
    Field(description=f"free-form JSON object: {FREE_JSON_RULES}"),
]
"""A free-form JSON object in a request body, within the limits of :mod:`services.api.storable`."""


class FlowAgentSettings(RequestModel):
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
    user_can_publish_data: bool = Field(
        default=False,
        strict=True,  # true or false, never 0/"no" read as false
        description="the user's participant token may publish data (text chat, RPC); off by default: a user who may "
        "publish data can send anything on any topic, so receivers must check the sender (README, data-channel topics)",
    )


class FlowCreate(RequestModel):
    """Body of ``POST /api/flows``."""

    name: str = Field(min_length=1, max_length=200)
    greeting: str = Field(min_length=1, max_length=2000)
    definition: FreeJson = Field(default_factory=dict)
    agent_settings: FlowAgentSettings = Field(default_factory=FlowAgentSettings)


class FlowUpdate(RequestModel):
    """Body of ``PATCH /api/flows/{flow_id}``: only the fields given change."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    greeting: str | None = Field(default=None, min_length=1, max_length=2000)
    definition: FreeJson | None = None
    agent_settings: FlowAgentSettings | None = None


class FlowOut(ApiModel):
    """A flow as the API shows it."""

    id: str
    name: str
    greeting: str
    definition: dict[str, Any]
    definition_error: str | None = Field(
        default=None,
        description="set when the stored definition cannot be served (written before the limits on free-form JSON "
        "existed): definition is then {} until a PATCH replaces it, and sessions of the flow are refused",
    )
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
    stages: SessionStages | None = Field(
        default=None, description="when each stage was reached, as of this status (null: not known to this API)"
    )


class FlowInit(ApiModel):
    """Answer of the agent's ``POST /internal/sessions/{id}/flow-init``: what it needs to run the flow."""

    session_id: str
    flow_id: str
    greeting: str
    definition: dict[str, Any]
    agent_settings: FlowAgentSettings


class ErrorDetail(ApiModel):
    """One problem of an invalid request: the field (``body.name``, ``query.limit``, ...) and what is wrong with it."""

    field: str
    problem: str


class ErrorBody(ApiModel):
    """Every error answer: what is wrong, and details where there are several problems."""

    error: str
    detail: list[ErrorDetail] | None = None


class WatchRequest(RequestModel):
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
