"""When the expiry loop scans: its interval is a fallback, the end rules keep their own interval, noted readiness
deadlines wake it. The storage port is a recorder here: what is under test is the schedule, not the SQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from services.runtime.publishing import EventPublisher
from services.session_store.expiry import Committed, EndRules, ExpiryAlarm, Publish, run_expiry
from services.session_store.lifecycle import Transition
from tests.polling import wait_until

RULES = EndRules(max_duration_s=7200, user_left_grace_s=30, no_user_timeout_s=120)


class Scans:
    """Counts the scans; finds nothing due."""

    def __init__(self) -> None:
        self.expiry = 0
        self.end = 0

    async def expire_due(
        self, limit: int, reason: str, publish: Publish | None = None, committed: Committed | None = None
    ) -> list[Transition]:
        self.expiry += 1
        return []

    async def end_overdue(
        self, limit: int, rules: EndRules, publish: Publish | None = None, committed: Committed | None = None
    ) -> list[Transition]:
        self.end += 1
        return []


class NoAnnouncements:
    async def publish(self, event: object) -> None:
        raise AssertionError("nothing was due")


async def _running(scans: Scans, alarm: ExpiryAlarm, end_interval_s: float) -> asyncio.Task[None]:
    publisher: EventPublisher = NoAnnouncements()  # type: ignore[assignment]
    return asyncio.create_task(
        run_expiry(scans, publisher, 3600.0, 100, RULES, end_interval_s=end_interval_s, alarm=alarm)
    )


async def test_the_end_rules_run_at_their_interval_when_the_expiry_interval_is_longer() -> None:
    scans = Scans()
    task = await _running(scans, ExpiryAlarm(), end_interval_s=0.05)
    try:
        await wait_until(lambda: scans.end >= 3, deadline_s=5, what="the end scan repeated at its own interval")
        assert scans.expiry <= scans.end + 1  # one readiness scan with each end scan, no extra ones in between
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_noted_readiness_deadline_wakes_the_scan() -> None:
    scans, alarm = Scans(), ExpiryAlarm()
    task = await _running(scans, alarm, end_interval_s=3600.0)
    try:
        await wait_until(lambda: scans.expiry == 1, deadline_s=5, what="the first scan")
        alarm.note(datetime.now(UTC) + timedelta(seconds=0.2))
        await wait_until(lambda: scans.expiry == 2, deadline_s=5, what="the scan at the noted deadline")
        alarm.note(datetime.now(UTC) + timedelta(hours=1))  # a later deadline does not wake it now
        await asyncio.sleep(1.5)  # past the least pause between scans
        assert scans.expiry == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
