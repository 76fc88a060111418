"""What customers' lifecycle webhooks carry: event names and the JSON body (Standard Webhooks' type/timestamp/data).

Shared by the API (which validates the events an endpoint asks for) and the webhook sender (which builds the body).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

WebhookEventType = Literal["session.ready", "session.failed", "session.expired", "session.ended"]
WEBHOOK_EVENT_TYPES: tuple[WebhookEventType, ...] = (
    "session.ready",
    "session.failed",
    "session.expired",
    "session.ended",
)
SECRET_PREFIX = "whsec_"  # + base64 of the key bytes, as the Standard Webhooks libraries expect
ENDPOINT_ID_PREFIX = "we_"
MESSAGE_ID_PREFIX = "msg_"


class _CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class WebhookStageTimes(_CamelModel):
    """When the session reached each stage (null: not reached)."""

    requested_at: datetime | None = None
    dispatched_at: datetime | None = None
    agent_joined_at: datetime | None = None
    listener_subscribed_at: datetime | None = None
    greeting_started_at: datetime | None = None
    greeting_finished_at: datetime | None = None
    ready_at: datetime | None = None
    ended_at: datetime | None = None


class WebhookSessionData(_CamelModel):
    """The session an event is about: its new status, why, and its stage times."""

    session_id: str
    status: str
    previous_status: str | None = None
    reason: str | None = None
    end_code: str | None = Field(default=None, description="why a terminal status was reached (a stable code)")
    stages: WebhookStageTimes = Field(default_factory=WebhookStageTimes)
    ready_after_ms: float | None = Field(default=None, description="from the request to ready, when both are known")


class WebhookMessage(_CamelModel):
    """The body of one webhook: ``type``, when it happened, and the session."""

    type: WebhookEventType
    timestamp: datetime
    data: WebhookSessionData
