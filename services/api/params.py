"""Path and query parameters several routes share, declared once so each is checked (and documented) the same way."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query

# Ids the API hands out are hex; any id of these characters is looked up (an unknown one is 404), anything else,
# a NUL (%00) or control character among them, is refused with 422 before it reaches PostgreSQL or Redis.
_ID_PATTERN = r"^[A-Za-z0-9_-]+$"
ID_MAX = 64


def _id(description: str) -> Any:
    """An id in the path, checked (and documented) like every other id."""
    return Path(min_length=1, max_length=ID_MAX, pattern=_ID_PATTERN, description=description)


FlowId = Annotated[str, _id("a flow's id (from POST /api/flows)")]
SessionId = Annotated[str, _id("a session's id (sessionId from POST /api/flows/{flow_id}/sessions)")]
WebhookEndpointId = Annotated[str, _id("a webhook endpoint's id")]
WebhookDeliveryId = Annotated[str, _id("a delivery's id (its webhook-id header)")]

AccessToken = Annotated[
    str | None,
    Query(
        max_length=4096,
        pattern=r"^[A-Za-z0-9_.-]*$",
        description="the session's clientToken, for EventSource (which cannot send headers); "
        "prefer the Authorization header where you can",
    ),
]
