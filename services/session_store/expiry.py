"""Server-side deadlines: sessions not ready in time become ``expired``; sessions that are over by the end rules
(maximum duration, the user left for good, nobody joined) become ``ended``. Clean-up follows the change."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog

from contracts.endings import EndCode, sentence
from contracts.events import SessionStatusChanged
from services.runtime.publishing import EventPublisher
from services.session_store.lifecycle import Transition

log = structlog.get_logger(__name__)

EXPIRED_REASON = "the agent was not ready by the session's readiness deadline"
LEAST_PAUSE_S = 1.0
"""Scans are at least this far apart (or ``interval_s``, when shorter), however many deadlines fall due meanwhile."""

Publish = Callable[[Sequence[SessionStatusChanged]], Awaitable[None]]  # a scan's announcements, once committed
Committed = Callable[[list[Transition]], None]  # sees each committed batch (the metrics)


def _ignore(_: list[Transition]) -> None:
    return None


@dataclass(frozen=True)
class EndRules:
    """When the scan ends a session: its maximum duration (unless its flow set one), how long a user who left
    may take to come back, and how long a ready session may wait for anyone to join."""

    max_duration_s: float
    user_left_grace_s: float
    no_user_timeout_s: float

    def reasons(self) -> dict[str, str]:
        """The human sentence recorded for each code the scan sets."""
        return {
            EndCode.MAX_DURATION: sentence(EndCode.MAX_DURATION),
            EndCode.USER_LEFT: sentence(EndCode.USER_LEFT, f"gone for more than {self.user_left_grace_s:g} s"),
            EndCode.NO_USER_JOINED: sentence(
                EndCode.NO_USER_JOINED, f"nobody joined within {self.no_user_timeout_s:g} s of ready"
            ),
        }


class ExpiringRepository(Protocol):
    """The storage port for expiry and the end scan."""

    async def expire_due(
        self, limit: int, reason: str, publish: Publish | None = None, committed: Committed | None = None
    ) -> list[Transition]:
        """Move up to ``limit`` open sessions past their deadline to ``expired``; return the moves made. Their
        announcements are stored with them and given to ``publish`` once committed (if that fails, the outbox's
        sweep publishes them); ``committed`` sees the moves once committed, before they are published."""
        ...

    async def end_overdue(
        self, limit: int, rules: EndRules, publish: Publish | None = None, committed: Committed | None = None
    ) -> list[Transition]:
        """Move up to ``limit`` sessions that ``rules`` say are over to ``ended``; like ``expire_due``."""
        ...


def _announcer(publisher: EventPublisher) -> Publish:
    async def announce(events: Sequence[SessionStatusChanged]) -> None:
        for event in events:
            await publisher.publish(event)

    return announce


async def expire_due_sessions(
    repo: ExpiringRepository, publisher: EventPublisher, batch: int, committed: Committed = _ignore
) -> int:
    """Expire what is due now (in batches) and announce each move once it committed (a failed announcement is left
    to the outbox's sweep); return how many sessions expired."""
    total = 0
    while True:
        transitions = await repo.expire_due(batch, EXPIRED_REASON, _announcer(publisher), committed)
        for transition in transitions:
            log.info("session_expired", session_id=transition.session_id, from_status=transition.from_status)
        total += len(transitions)
        if len(transitions) < batch:
            return total


async def end_overdue_sessions(
    repo: ExpiringRepository, publisher: EventPublisher, batch: int, rules: EndRules, committed: Committed = _ignore
) -> int:
    """End what the rules say is over (in batches), announced like expiries; return how many sessions ended."""
    total = 0
    while True:
        transitions = await repo.end_overdue(batch, rules, _announcer(publisher), committed)
        for transition in transitions:
            log.info("session_ended", session_id=transition.session_id, code=transition.code)
        total += len(transitions)
        if len(transitions) < batch:
            return total


class ExpiryAlarm:
    """The earliest readiness deadline this replica has seen requested: the scan wakes for it instead of polling often.

    Each request is applied by one replica, which notes its deadline; the scan's own interval finds those of a
    replica that stopped since."""

    def __init__(self) -> None:
        self._earliest: float | None = None  # loop time of the earliest deadline not scanned for yet
        self._noted = asyncio.Event()

    def note(self, deadline: datetime) -> None:
        """A session with this readiness deadline was requested: scan for it when it is due (if that is sooner)."""
        at = time.monotonic() + (deadline - datetime.now(UTC)).total_seconds()
        if self._earliest is None or at < self._earliest:
            self._earliest = at
            self._noted.set()

    async def sleep(self, least_s: float, most_s: float) -> None:
        """Until the earliest noted deadline, at least ``least_s`` and at most ``most_s`` from now."""
        started = time.monotonic()
        while True:
            self._noted.clear()
            until = started + most_s
            if self._earliest is not None:
                until = min(until, max(self._earliest, started + least_s))
            left = until - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._noted.wait(), left)
        scanned = time.monotonic()
        if self._earliest is not None and self._earliest <= scanned:
            self._earliest = None  # the scan that follows takes it


async def run_expiry(
    repo: ExpiringRepository,
    publisher: EventPublisher,
    interval_s: float,
    batch: int,
    rules: EndRules | None = None,
    end_interval_s: float = 5.0,
    committed: Committed = _ignore,
    alarm: ExpiryAlarm | None = None,
) -> None:
    """Check readiness deadlines every ``interval_s`` (sooner when ``alarm`` has a deadline due, but at most once a
    ``LEAST_PAUSE_S``) and the end rules every ``end_interval_s`` (it reads every open session: ~45 ms for 10,000)
    until cancelled; a failed check is logged and retried next tick."""
    alarm = alarm if alarm is not None else ExpiryAlarm()
    next_end_scan = 0.0
    while True:
        try:
            await expire_due_sessions(repo, publisher, batch, committed)
            if rules is not None and time.monotonic() >= next_end_scan:
                next_end_scan = time.monotonic() + end_interval_s
                await end_overdue_sessions(repo, publisher, batch, rules, committed)
        except Exception:  # a database or broker outage must not stop the loop for good
            log.exception("expiry_check_failed", retry_in_s=interval_s)
        most_s = interval_s if rules is None else min(interval_s, max(0.0, next_end_scan - time.monotonic()))
        await alarm.sleep(min(LEAST_PAUSE_S, most_s), most_s)
