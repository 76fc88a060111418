"""Back-pressure toward the agent fleet: hold new dispatches while too many sessions still wait for their agent.

LiveKit drops a job that no worker accepts (every worker full: ``selectWorkerWeightedByLoad`` finds none, the
job request fails and nobody retries it), and the watchdog re-dispatches such a session only after the join
timeout. Unpaced, a burst larger than the fleet's free capacity turns into waves of refused jobs, each wave one
join timeout after the last, and a session can run out of attempts. Paced, a new session is dispatched only while
fewer than ``max_waiting`` dispatched sessions (every replica's: the ledger's watch set) wait for their agent; its
message waits meanwhile (later ones stay unread in the stream, visible as lag). The wait is bounded: after
``max_wait_s`` the session is dispatched anyway, and the watchdog covers it as before. The cap is soft: replicas
share one count, so each may overshoot it by what it admitted since its last look. Far below the cap (under half of
it, counting this replica's own dispatches since) a look stays good for ``relaxed_look_s``: at a steady pace a
dispatch then costs no count read of its own; near the cap the count is read every ``look_every_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PacingPolicy:
    """``max_waiting`` 0 turns pacing off; ``look_every_s`` is how often the shared count is read near the cap,
    ``relaxed_look_s`` how often under half of it."""

    max_waiting: int
    max_wait_s: float
    look_every_s: float = 0.05
    relaxed_look_s: float = 1.0


class DispatchPacer:
    """Admits dispatches under the cap; one count read per ``look_every_s`` however many handlers wait."""

    def __init__(
        self,
        count_waiting: Callable[[], Awaitable[int]],
        policy: PacingPolicy,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._count_waiting = count_waiting
        self._policy = policy
        self._clock = clock
        self._looked_at = float("-inf")
        self._waiting = 0  # as of the last look, plus the dispatches finished here since
        self._dispatching = 0  # admitted here and not yet armed, so not in the count yet
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def slot(self, max_wait_s: float | None = None) -> AsyncIterator[float]:
        """Hold a slot while dispatching (wait at most ``max_wait_s``, never more than the policy's); yield the
        seconds waited. Nothing to wait for (0 or less: a session past its readiness deadline) takes no slot."""
        if self._policy.max_waiting <= 0 or (max_wait_s is not None and max_wait_s <= 0):
            yield 0.0
            return
        bound = self._policy.max_wait_s if max_wait_s is None else min(max_wait_s, self._policy.max_wait_s)
        waited = await self._admit(bound)
        try:
            yield waited
        finally:
            self._dispatching -= 1
            # Armed by now (or failed): the count read before the next look does not have it yet.
            self._waiting += 1

    async def _admit(self, max_wait_s: float) -> float:
        policy = self._policy
        started = self._clock()
        while not await self._take():
            waited = self._clock() - started
            if waited >= max_wait_s:
                log.warning("dispatch_pacing_gave_up", waited_s=round(waited, 3), max_waiting=policy.max_waiting)
                self._dispatching += 1
                return waited
            await asyncio.sleep(policy.look_every_s)
        return self._clock() - started

    async def _take(self) -> bool:
        """Count this dispatch in if there is room."""
        async with self._lock:  # one count read at a time; the others use its result
            now, policy = self._clock(), self._policy
            age = now - self._looked_at
            far_below = (self._waiting + self._dispatching) * 2 < policy.max_waiting and age < policy.relaxed_look_s
            if age >= policy.look_every_s and not far_below:
                self._waiting = await self._count_waiting()
                self._looked_at = now
            if self._waiting + self._dispatching >= self._policy.max_waiting:
                return False
            self._dispatching += 1
            return True
