"""The consumer's handler: a status change customers hear of becomes one delivery per endpoint that wants it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import structlog

from contracts.events import SessionStatusChanged
from services.webhooks.payloads import webhook_body, webhook_event_type, webhook_message

log = structlog.get_logger(__name__)


class Deliveries(Protocol):
    """Where deliveries are made (:class:`services.webhooks.repository.DeliveryRepository`)."""

    async def enqueue(self, org_id: str, session_id: str, event_type: str, payload: str) -> list[str]:
        """Make a delivery for each endpoint of ``org_id`` that wants ``event_type``; return the new ones' ids."""
        ...


async def on_status_changed(change: SessionStatusChanged, deliveries: Deliveries, wake: Callable[[], None]) -> int:
    """Record the deliveries of ``change`` (idempotent: a repeated change adds none); return how many are new.

    Only recording happens here, so the stream message is acked in milliseconds whatever the endpoints do.
    """
    event_type = webhook_event_type(change)
    if event_type is None or not change.org_id:
        return 0
    body = webhook_body(webhook_message(change, event_type))
    made = await deliveries.enqueue(change.org_id, change.session_id, event_type, body)
    if made:
        log.info("webhook_deliveries_made", event_type=event_type, deliveries=len(made))
        wake()
    return len(made)
