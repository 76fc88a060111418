"""Which status changes customers hear of, and the body they get: plain functions of the contracts' event."""

from __future__ import annotations

from contracts.events import SessionStatusChanged
from contracts.webhooks import WebhookEventType, WebhookMessage, WebhookSessionData, WebhookStageTimes

_EVENT_FOR_STATUS: dict[str, WebhookEventType] = {
    "ready": "session.ready",
    "failed": "session.failed",
    "expired": "session.expired",
    "ended": "session.ended",
}


def webhook_event_type(change: SessionStatusChanged) -> WebhookEventType | None:
    """The webhook event a status change is (None: customers are not told of this status)."""
    return _EVENT_FOR_STATUS.get(change.to_status)


def webhook_message(change: SessionStatusChanged, event_type: WebhookEventType) -> WebhookMessage:
    """The message for ``change``: the new status, its reason and end code, and the stage times recorded with it."""
    stages = WebhookStageTimes(**change.stages.model_dump()) if change.stages is not None else WebhookStageTimes()
    ready_after_ms = None
    if stages.requested_at is not None and stages.ready_at is not None:
        ready_after_ms = round((stages.ready_at - stages.requested_at).total_seconds() * 1000, 1)
    data = WebhookSessionData(
        session_id=change.session_id,
        status=change.to_status,
        previous_status=change.from_status,
        reason=change.reason,
        end_code=change.code.value if change.code is not None else None,
        stages=stages,
        ready_after_ms=ready_after_ms,
    )
    return WebhookMessage(type=event_type, timestamp=change.occurred_at, data=data)


def webhook_body(message: WebhookMessage) -> str:
    """The JSON body sent (and signed) on every attempt: camelCase keys, nulls kept."""
    return message.model_dump_json(by_alias=True)
