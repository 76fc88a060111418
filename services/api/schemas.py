"""Request and response bodies of the HTTP API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Base: camelCase JSON, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class FlowCreate(ApiModel):
    """Body of ``POST /api/flows``."""

    name: str = Field(min_length=1, max_length=200)
    greeting: str = Field(min_length=1, max_length=2000)


class FlowOut(ApiModel):
    """A flow as the API shows it."""

    id: str
    name: str
    greeting: str
    created_at: datetime


class SessionCreated(ApiModel):
    """Answer of ``POST /api/flows/{flow_id}/sessions``: everything the frontend needs to join."""

    session_id: str
    room_name: str
    token: str
    livekit_url: str
    status: str = "pending"
    ready_deadline: datetime


class SessionStages(ApiModel):
    """When each stage was reached (null: not yet)."""

    requested: datetime | None = None
    dispatched: datetime | None = None
    agent_joined: datetime | None = None
    ready: datetime | None = None
    ended: datetime | None = None


class SessionOut(ApiModel):
    """A session's status as the API shows it."""

    session_id: str
    status: str
    reason: str | None = None
    flow_id: str | None = None
    room_name: str | None = None
    ready_deadline: datetime | None = None
    stages: SessionStages


class ErrorBody(ApiModel):
    """Every error answer: what is wrong, and details where there are several problems."""

    error: str
    detail: list[dict[str, object]] | None = None
