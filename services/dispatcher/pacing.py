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

Held sessions wait in line, first come first served, and cost nothing while they wait: one look loop, running only
while some wait, reads the count every ``look_every_s`` and lets in as many as there is room for (a backlog held
up to ``max_workers`` handlers, each waking every look to try again: ~1,300 wake-ups a second for nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
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


@dataclass
class _Held:
    """A session in line: told when let in, or when its wait ran out (it is dispatched anyway)."""

    told: asyncio.Future[None]
    since: float
    give_up_at: float


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
        self._line: deque[_Held] = deque()
        self._looker: asyncio.Task[None] | None = None

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

    async def aclose(self) -> None:
        """Stop the look loop (at shutdown: the handlers that waited in line are gone)."""
        looker, self._looker = self._looker, None
        if looker is not None:
            looker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await looker

    async def _admit(self, max_wait_s: float) -> float:
        started = self._clock()
        if not self._line and await self._take():  # nobody in line before it: no overtaking
            return self._clock() - started
        held = _Held(asyncio.get_running_loop().create_future(), started, started + max_wait_s)
        self._line.append(held)
        if self._looker is None or self._looker.done():
            self._looker = asyncio.create_task(self._look_while_held())
        try:
            await held.told  # let in, or its wait ran out: counted as dispatching either way
        except asyncio.CancelledError:
            if held.told.done() and not held.told.cancelled():
                self._dispatching -= 1  # let in as its handler was cancelled: the slot goes back
            raise
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

    async def _look_while_held(self) -> None:
        """While sessions wait in line: read the count every ``look_every_s`` and let in, in order, as many as there
        is room for; tell those whose wait ran out to go anyway."""
        while self._line:
            await asyncio.sleep(self._policy.look_every_s)
            async with self._lock:
                try:
                    self._waiting = await self._count_waiting()
                    self._looked_at = self._clock()
                except Exception as exc:  # noqa: BLE001 - Redis away: the last count stands, the waits stay bounded
                    log.warning("dispatch_pacing_count_failed", error=str(exc))
                self._let_in(self._clock())

    def _let_in(self, now: float) -> None:
        room = self._policy.max_waiting - self._waiting - self._dispatching
        line, self._line = self._line, deque()
        for held in line:
            if held.told.done():  # its handler went away
                continue
            if room > 0:
                room -= 1
            elif now >= held.give_up_at:
                waited_s = round(now - held.since, 3)
                log.warning("dispatch_pacing_gave_up", waited_s=waited_s, max_waiting=self._policy.max_waiting)
            else:
                self._line.append(held)
                continue
            self._dispatching += 1
            held.told.set_result(None)
