"""Waiting in tests with a deadline: poll a condition, never sleep and hope."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

Predicate = Callable[[], bool | Awaitable[bool]]


async def wait_until(predicate: Predicate, *, deadline_s: float, what: str, interval_s: float = 0.02) -> float:
    """Poll ``predicate`` (sync or async) until true; return the seconds it took.

    AssertionError naming ``what`` and the bound once ``deadline_s`` has passed without it holding.
    """
    started = time.monotonic()
    while True:
        outcome = predicate()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return time.monotonic() - started
        if time.monotonic() - started > deadline_s:
            raise AssertionError(f"{what}: not within {deadline_s} s")
        await asyncio.sleep(interval_s)
