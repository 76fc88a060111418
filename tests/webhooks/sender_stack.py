"""The webhook sender as its service runs it (its FastStream app on real Redis and PostgreSQL), and status changes
published to it the way the session store announces them."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from faststream.redis import RedisBroker

from contracts.endings import EndCode
from contracts.events import SessionStageTimes, SessionStatusChanged
from services.runtime.publishing import BrokerPublisher
from services.webhooks.app import create_app
from services.webhooks.settings import WebhookSettings

FAST_RETRIES = {
    "webhook_retry_base_s": 0.1,
    "webhook_retry_factor": 2.0,
    "webhook_retry_jitter": 0.0,
    "webhook_poll_interval_s": 0.05,
    "webhook_timeout_s": 2.0,
}


@contextlib.asynccontextmanager
async def running_sender(redis_url: str, database_url: str, **overrides: object) -> AsyncIterator[None]:
    """Run the webhook sender's app (dev mode: loopback receivers allowed) until the block ends."""
    values: dict[str, object] = {**FAST_RETRIES, **overrides}
    settings = WebhookSettings(
        redis_url=redis_url,
        database_url=database_url,
        dev_mode=True,
        consumer_name=f"hooks-test-{uuid.uuid4().hex[:8]}",
        **values,  # type: ignore[arg-type]
    )
    app = create_app(settings)
    await app.start()
    try:
        yield
    finally:
        await app.stop()


def status_change(org_id: str, session_id: str, from_status: str | None, to_status: str) -> SessionStatusChanged:
    """A ``session.status_changed`` as the session store announces it, with stage times up to ``to_status``."""
    start = datetime.now(UTC) - timedelta(seconds=3)
    stages = SessionStageTimes(
        requested_at=start,
        dispatched_at=start + timedelta(milliseconds=40),
        agent_joined_at=start + timedelta(milliseconds=900),
        ready_at=start + timedelta(seconds=2) if to_status in ("ready", "ended") else None,
        ended_at=start + timedelta(seconds=3) if to_status in ("ended", "failed", "expired") else None,
    )
    ending = to_status in ("ended", "failed", "expired")
    return SessionStatusChanged(
        session_id=session_id,
        org_id=org_id,
        from_status=from_status,
        to_status=to_status,
        reason="the user left" if ending else None,
        code=EndCode.USER_LEFT if ending else None,
        stages=stages,
    )


@contextlib.asynccontextmanager
async def publisher(redis_url: str) -> AsyncIterator[BrokerPublisher]:
    """Publishes contract events on ``redis_url``'s streams."""
    broker = RedisBroker(redis_url)
    await broker.connect()
    try:
        yield BrokerPublisher(broker)
    finally:
        await broker.stop()
