"""The watchdog's loop: an idle watchdog only looks at the earliest deadline (no claim script), sleeps until a known
deadline but never longer than its interval, and scans as soon as a watch is due. Time is a fake clock moved by the
fake sleep, so nothing here waits."""

from __future__ import annotations

import asyncio

import pytest

from services.dispatcher.watchdog import WatchdogPolicy, watch_forever

from .fakes import FakeLedger


class Time:
    """A fake clock and the sleep that moves it; cancels the loop after ``max_sleeps``."""

    def __init__(self, max_sleeps: int) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._max = max_sleeps

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        if len(self.sleeps) >= self._max:
            raise asyncio.CancelledError
        self.now += seconds


class Looks:
    """The ledger's ``next_due`` counted, and scans recorded with the time they ran at."""

    def __init__(self, ledger: FakeLedger, time: Time) -> None:
        self.ledger, self.time = ledger, time
        self.looks = 0
        self.scans: list[float] = []

    async def next_due(self) -> float | None:
        self.looks += 1
        return await self.ledger.next_due()

    async def scan(self) -> int:
        self.scans.append(self.time.now)
        return len(await self.ledger.claim_due(self.time.now, 60.0, 100))


async def _run(looks: Looks, time: Time, interval_s: float) -> None:
    with pytest.raises(asyncio.CancelledError):
        await watch_forever(looks.scan, interval_s, looks.next_due, time.clock, time.sleep)


async def test_an_idle_watchdog_only_looks_once_per_interval() -> None:
    time = Time(max_sleeps=4)
    looks = Looks(FakeLedger(), time)
    await _run(looks, time, interval_s=5.0)
    assert looks.scans == []  # nothing watched: never a claim
    assert looks.looks == 4 and time.sleeps == [5.0] * 4


async def test_it_wakes_at_a_known_deadline_and_scans_it() -> None:
    time = Time(max_sleeps=3)
    ledger = FakeLedger()
    await _arm(ledger, "s1", 1002.5)  # due before the interval runs out
    looks = Looks(ledger, time)
    await _run(looks, time, interval_s=5.0)
    assert time.sleeps[0] == 2.5  # slept until the deadline, not a whole interval
    assert looks.scans == [1002.5]  # scanned exactly when due
    assert time.sleeps[1] == 5.0  # the claimed watch is leased 60 s ahead: back to the interval


async def test_a_watch_armed_after_a_look_is_not_missed() -> None:
    """With the interval at most the shortest join wait, a watch armed right after a look is due no earlier than
    the next look."""
    policy = WatchdogPolicy()
    time = Time(max_sleeps=4)
    ledger = FakeLedger()
    looks = Looks(ledger, time)
    armed_at: list[float] = []
    original = looks.next_due

    async def arm_after_first_look() -> float | None:
        found = await original()
        if looks.looks == 1:  # another replica dispatches just after this look, with the shortest wait
            await _arm(ledger, "s1", time.now + policy.shortest_wait_s)
            armed_at.append(time.now)
        return found

    looks.next_due = arm_after_first_look  # type: ignore[method-assign]
    await _run(looks, time, interval_s=min(30.0, policy.shortest_wait_s))  # as the app caps it
    assert looks.scans == [armed_at[0] + policy.shortest_wait_s]  # scanned at its deadline, not later


async def _arm(ledger: FakeLedger, session_id: str, deadline: float) -> None:
    await ledger.remember(session_id, f"room-{session_id}", "{}", "c")
    assert await ledger.arm(session_id, "AD_1", 1, deadline)
