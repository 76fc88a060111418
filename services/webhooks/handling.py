"""The consumer's handler: a status change customers hear of becomes one delivery per endpoint that wants it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from contracts.events import SessionStatusChanged
from services.webhooks.payloads import webhook_body, webhook_event_type, webhook_message
from services.webhooks.repository import Wanted

log = structlog.get_logger(__name__)


class Deliveries(Protocol):
    """Where deliveries are made (:class:`services.webhooks.repository.DeliveryRepository`)."""

    async def enqueue_many(self, wanted: Sequence[Wanted]) -> list[tuple[str, str]]:
        """Make a delivery for each endpoint of each wanted organisation that wants its event type (a repeated change
        adds none); return the (session id, event type) of each new delivery."""
        ...


async def on_status_changes(
    changes: Sequence[SessionStatusChanged], deliveries: Deliveries, wake: Callable[[], None]
) -> int:
    """Record the deliveries of a batch of changes, in one statement (idempotent: a repeated change adds none);
    return how many are new.

    Only recording happens here, so the stream messages are acked in milliseconds whatever the endpoints do.
    """
    wanted: list[Wanted] = []
    for change in changes:
        event_type = webhook_event_type(change)
        if event_type is not None and change.org_id:
            body = webhook_body(webhook_message(change, event_type))
            wanted.append(Wanted(change.org_id, change.session_id, event_type, body))
    new = await deliveries.enqueue_many(wanted)
    made = Counter(new)
    for want in wanted:
        count = made.pop((want.session_id, want.event_type), 0)
        if count:
            log.info("webhook_deliveries_made", session_id=want.session_id, event_type=want.event_type,
                     deliveries=count)  # fmt: skip
    if new:
        wake()
    return len(new)
