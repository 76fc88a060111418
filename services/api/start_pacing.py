"""At most ``STARTS_PER_TURN`` admitted requests begin their work in one turn of the event loop; the rest begin in
the next turns, in arrival order.

Why: a refusal (:mod:`services.api.overload`) is written as soon as the loop reads the request, but the loop reads
only between turns, and a turn runs every callback that became ready during the last one. Under overload the in-flight
cap lets up to ``MAX_REQUESTS_IN_FLIGHT`` requests in, and the first step of each (validation, tokens, the admission
script's call: most of its CPU) all became ready together: one turn then ran tens of them, ~20 ms at the median and
over 100 ms at the tail, and every refusal waited for it. Paced, a turn runs a few starts (and about as many requests
resuming after their Redis answer), so the loop reads (and refuses) often. Throughput is the same: one thread does
the same work in more, shorter turns, and a request waiting for its start holds no CPU, just its slot.

A slot of a concurrency window would bound this too, but a request waiting on PostgreSQL would hold it; a start
ticket is given up as soon as the request starts, whatever it waits for afterwards.
"""

from __future__ import annotations

import asyncio
from collections import deque

STARTS_PER_TURN = 8  # ~8 x 0.4 ms of a session request's first step: a turn of a few ms


class StartPacer:
    """Hands out start tickets: ``STARTS_PER_TURN`` per loop turn, then in arrival order in the turns after."""

    def __init__(self, per_turn: int = STARTS_PER_TURN) -> None:
        self.per_turn = per_turn
        self._started = 0  # tickets handed out in this turn
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._turn_scheduled = False

    @property
    def waiting(self) -> int:
        """Requests admitted but not started yet."""
        return len(self._waiting)

    @property
    def turn_pending(self) -> bool:
        """Whether a turn's callback is scheduled (only while requests arrive or wait: an idle pacer costs nothing)."""
        return self._turn_scheduled

    async def start(self) -> None:
        """Return once this request may begin: at once while this turn has tickets left and nobody waits."""
        loop = asyncio.get_running_loop()
        if not self._turn_scheduled:
            self._turn_scheduled = True
            loop.call_soon(self._next_turn)  # runs in the next turn: the count restarts there
        if self._started < self.per_turn and not self._waiting:
            self._started += 1
            return
        ticket = loop.create_future()
        self._waiting.append(ticket)
        await ticket  # a waiting request is never lost: a turn is scheduled while anyone waits

    def _next_turn(self) -> None:
        self._turn_scheduled = False
        self._started = 0
        while self._waiting and self._started < self.per_turn:
            ticket = self._waiting.popleft()
            if not ticket.done():  # a cancelled waiter (its client left) takes no ticket
                ticket.set_result(None)
                self._started += 1
        if self._started:  # those woken run in the next turn, and this one's count restarts after it
            self._turn_scheduled = True
            asyncio.get_running_loop().call_soon(self._next_turn)
