"""Request and response bodies of ``/api/webhooks`` (camelCase on the wire, like every API body)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from contracts.webhooks import WEBHOOK_EVENT_TYPES, WebhookEventType
from services.api.schemas import ApiModel, RequestModel


class WebhookEndpointCreate(RequestModel):
    """A new endpoint: where to send, and which events (all of them when not given)."""

    url: str = Field(
        min_length=1,
        max_length=2048,
        pattern=r"^https?://[^\s/?#]+(?:[/?][^\s#]*)?$",
        description="https URL (http only with DEV_MODE=true); outside dev mode a public address",
    )
    events: list[WebhookEventType] = Field(
        default_factory=lambda: list(WEBHOOK_EVENT_TYPES), min_length=1, max_length=len(WEBHOOK_EVENT_TYPES)
    )
    description: str = Field(default="", max_length=500)


class WebhookEndpointOut(ApiModel):
    """A registered endpoint."""

    id: str
    url: str
    events: list[str]
    description: str
    created_at: datetime


class WebhookEndpointCreated(WebhookEndpointOut):
    """The new endpoint with its signing secret: shown this once, keep it to verify signatures."""

    secret: str = Field(description="whsec_ + base64 key; Standard Webhooks libraries take it as it is")


class WebhookSecretRotate(RequestModel):
    """A secret rotation: how long the secret being replaced keeps signing beside the new one."""

    previous_secret_valid_for_s: int = Field(
        default=86_400,
        ge=0,
        le=7 * 86_400,
        description="seconds the old secret still signs every attempt beside the new one (0: it stops at once), "
        "time to move receivers to the new secret; rotating again drops the older one at once",
    )


class WebhookSecretRotated(WebhookEndpointOut):
    """The endpoint's new signing secret, shown this once, and until when the old one still signs."""

    secret: str = Field(description="whsec_ + base64 key; Standard Webhooks libraries take it as it is")
    previous_secret_expires_at: datetime | None = Field(
        description="until then each attempt carries two signatures (new and old secret); null: only the new one"
    )


class WebhookEndpointList(ApiModel):
    """The organisation's endpoints."""

    endpoints: list[WebhookEndpointOut]


class WebhookDeliveryOut(ApiModel):
    """One event sent (or being sent) to one endpoint; ``id`` is the ``webhook-id`` header of every attempt."""

    id: str
    endpoint_id: str
    session_id: str
    event_type: str
    status: str = Field(description="pending (being tried), delivered, or dead (every attempt failed)")
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: datetime
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None


class WebhookDeliveryList(ApiModel):
    """An endpoint's most recent deliveries, newest first."""

    deliveries: list[WebhookDeliveryOut]


class WebhookReplayed(ApiModel):
    """How many deliveries were made due again."""

    replayed: int
