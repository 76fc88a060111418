"""The start pacer: at most ``per_turn`` requests begin in one turn of the event loop, the rest in the next turns in
arrival order, and a waiter that goes away holds nobody up."""

from __future__ import annotations

import asyncio
from collections import Counter

from services.api.start_pacing import StartPacer


class TurnClock:
    """Counts the event loop's turns: a callback that schedules itself again for the next turn."""

    def __init__(self) -> None:
        self.turn = 0
        self._handle: asyncio.Handle | None = None

    def __enter__(self) -> TurnClock:
        self._handle = asyncio.get_running_loop().call_soon(self._tick)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._handle is not None
        self._handle.cancel()

    def _tick(self) -> None:
        self.turn += 1
        self._handle = asyncio.get_running_loop().call_soon(self._tick)


async def _started_in_turns(pacer: StartPacer, requests: int) -> list[tuple[int, int]]:
    """``requests`` requests arriving in one turn: (request, turn it began in), in the order they began."""
    began: list[tuple[int, int]] = []
    with TurnClock() as clock:

        async def request(i: int) -> None:
            await pacer.start()
            began.append((i, clock.turn))

        await asyncio.gather(*(request(i) for i in range(requests)))
    return began


async def test_at_most_per_turn_requests_begin_in_one_turn_in_arrival_order() -> None:
    pacer = StartPacer(per_turn=3)
    began = await _started_in_turns(pacer, 20)
    assert [i for i, _ in began] == list(range(20)), "requests begin in the order they arrived"
    per_turn = Counter(turn for _, turn in began)
    assert max(per_turn.values()) == 3
    assert len(per_turn) == 7, "20 requests at 3 a turn: 7 turns"
    assert pacer.waiting == 0


async def test_requests_under_the_per_turn_number_begin_at_once() -> None:
    pacer = StartPacer(per_turn=8)
    began = await _started_in_turns(pacer, 8)
    assert len({turn for _, turn in began}) == 1, "all eight in the turn they arrived in"


async def test_a_waiter_that_goes_away_holds_nobody_up() -> None:
    pacer = StartPacer(per_turn=1)
    began: list[int] = []

    async def request(i: int) -> None:
        await pacer.start()
        began.append(i)

    tasks = [asyncio.create_task(request(i)) for i in range(5)]
    await asyncio.sleep(0)  # every request has arrived: the first began, four wait
    assert began == [0] and pacer.waiting == 4
    tasks[2].cancel()  # its client left while it waited
    async with asyncio.timeout(5):
        await asyncio.gather(*tasks, return_exceptions=True)
    assert began == [0, 1, 3, 4]
    assert pacer.waiting == 0


async def test_the_pacer_idles_when_nobody_waits() -> None:
    """Once every request began, no callback keeps the loop spinning."""
    pacer = StartPacer(per_turn=2)
    await _started_in_turns(pacer, 5)
    for _ in range(3):  # the turn that restarts the count, then nothing
        await asyncio.sleep(0)
    assert not pacer.turn_pending
