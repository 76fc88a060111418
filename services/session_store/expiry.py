"""Server-side readiness deadlines: sessions not ready in time become ``expired`` (clean-up follows the change)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from services.runtime.publishing import EventPublisher
from services.session_store.lifecycle import Transition

log = structlog.get_logger(__name__)

EXPIRED_REASON = "the agent was not ready by the session's readiness deadline"


class ExpiringRepository(Protocol):
    """The storage port for expiry."""

    async def expire_due(
        self,
        limit: int,
        reason: str,
        before_commit: Callable[[list[Transition]], Awaitable[None]] | None = None,
    ) -> list[Transition]:
        """Move up to ``limit`` open sessions past their deadline to ``expired``; return the moves made.
        ``before_commit`` runs before they are committed; if it raises, none of them is."""
        ...


async def expire_due_sessions(repo: ExpiringRepository, publisher: EventPublisher, batch: int) -> int:
    """Expire what is due now (in batches) and announce each move before it commits (a failed announcement
    rolls the batch back for the next scan); return how many sessions expired."""

    async def announce(transitions: list[Transition]) -> None:
        for transition in transitions:
            await publisher.publish(transition.announcement(transition.session_id))

    total = 0
    while True:
        transitions = await repo.expire_due(batch, EXPIRED_REASON, before_commit=announce)
        for transition in transitions:
            log.info("session_expired", session_id=transition.session_id, from_status=transition.from_status)
        total += len(transitions)
        if len(transitions) < batch:
            return total


async def run_expiry(repo: ExpiringRepository, publisher: EventPublisher, interval_s: float, batch: int) -> None:
    """Check deadlines every ``interval_s`` until cancelled; a failed check is logged and retried next tick."""
    while True:
        try:
            await expire_due_sessions(repo, publisher, batch)
        except Exception:  # a database or broker outage must not stop the loop for good
            log.exception("expiry_check_failed", retry_in_s=interval_s)
        await asyncio.sleep(interval_s)
