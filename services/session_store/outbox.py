"""Status changes are announced after they are stored, never before, and still announced if the process dies between.

Commit first, announce after, through an outbox:

1. A transaction that moves sessions also stores the moves' ``session.status_changed`` events: one row of
   ``session_announcements`` per transaction, written by its update statement (a data-modifying CTE).
2. Once it committed, the events are published (one Redis MULTI) and the row's id is noted as announced; the row is
   deleted by the next transaction's lock statement (no statement, no round trip of its own), by the sweep's next
   tick when idle, or at shutdown.
3. A row older than ``older_than_s`` was never announced (the process died, or Redis refused, between the commit and
   the publish): the sweep of any replica publishes it, then deletes it in the same transaction.

So a consumer never sees a status that was not stored (a failed commit announces nothing), and every stored move is
announced at least once with its original content and message id, whoever sweeps it. The event that caused the move
is not acked before its announcement was published; redelivered, it finds its change applied, moves nothing and
announces nothing new: its announcement is the outbox row's. Announcements of different transactions may reach the
stream out of order (a swept one late); consumers take only forward moves (``contracts.status``), as they must for
redeliveries anyway.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import structlog
from pydantic import TypeAdapter

from contracts.events import SessionStatusChanged

log = structlog.get_logger(__name__)

Publish = Callable[[Sequence[SessionStatusChanged]], Awaitable[None]]
"""Publishes a transaction's announcements at once; raises if the broker did not take them."""

INSERT = "INSERT INTO session_announcements (id, events) VALUES (%s, %s)"
DELETE_ANNOUNCED = "DELETE FROM session_announcements WHERE id = ANY(%s)"
# Oldest first; SKIP LOCKED: replicas share the rows, and a row a replica is still inserting is not visible anyway.
TAKE_UNANNOUNCED = """
DELETE FROM session_announcements WHERE id IN (
    SELECT id FROM session_announcements WHERE created_at <= now() - make_interval(secs => %s)
    ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED
) RETURNING created_at, events
"""

_EVENTS = TypeAdapter(list[SessionStatusChanged])


def new_id() -> uuid.UUID:
    """The id of a transaction's row (made here: the insert needs no result read back)."""
    return uuid.uuid4()


def dumped(events: Sequence[SessionStatusChanged]) -> str:
    """The row's ``events`` column: the events as one JSON array."""
    return "[" + ",".join(event.model_dump_json() for event in events) + "]"


def loaded(text: str) -> list[SessionStatusChanged]:
    """The events of a row's ``events`` column."""
    return _EVENTS.validate_json(text)


class Announced:
    """Ids of rows whose events were published and that are not deleted yet (they go with the next transaction)."""

    def __init__(self) -> None:
        self._ids: list[uuid.UUID] = []

    def add(self, row_id: uuid.UUID) -> None:
        """The row's events were published: delete it with the next transaction."""
        self._ids.append(row_id)

    def take(self) -> list[uuid.UUID]:
        """The ids to delete now; :meth:`give_back` them if that transaction fails."""
        ids, self._ids = self._ids, []
        return ids

    def give_back(self, ids: list[uuid.UUID]) -> None:
        """Their deletion did not commit: with the next transaction, then."""
        self._ids.extend(ids)


class Sweeping(Protocol):
    """The storage port of the sweep."""

    async def sweep_announcements(self, older_than_s: float, limit: int, publish: Publish) -> int:
        """Delete what was announced; publish (then delete) up to ``limit`` rows older than ``older_than_s``."""
        ...


async def run_sweep(repo: Sweeping, publish: Publish, interval_s: float, older_than_s: float, limit: int = 100) -> None:
    """Sweep every ``interval_s`` until cancelled; a failed sweep is logged and retried next tick."""
    while True:
        try:
            swept = limit
            while swept >= limit:
                swept = await repo.sweep_announcements(older_than_s, limit, publish)
                if swept:
                    log.warning("unannounced_changes_announced", transactions=swept)
        except Exception:  # a database or broker outage must not stop the loop for good
            log.exception("announcement_sweep_failed", retry_in_s=interval_s)
        await asyncio.sleep(interval_s)
