"""The open loop's schedule (bench.loadgen and bench.lean_loop): request i is due at ``t0 + i / rate`` for
``duration_s``, whatever the answers, so a slow server cannot slow the generator down (coordinated omission)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

START_IN_S = 0.05  # the first request is due this long after the schedule is made


class Schedule:
    """``rate`` requests a second for ``duration_s``, starting ``START_IN_S`` from now."""

    def __init__(self, rate: float, duration_s: float) -> None:
        self.rate = rate
        self.total = int(rate * duration_s)
        self.t0 = time.perf_counter() + START_IN_S

    async def due_times(self) -> AsyncIterator[float]:
        """Each request's due time, once it has come (at once when it has passed: a late generator catches up)."""
        for i in range(self.total):
            due = self.t0 + i / self.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            yield due

    def elapsed_s(self) -> float:
        """Since the first request was due: what the target was offered its requests over (``sending_s``)."""
        return time.perf_counter() - self.t0
