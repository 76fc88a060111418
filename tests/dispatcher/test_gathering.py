"""How the dispatcher reads its streams: the status-change reader pauses after a batch that was not full, so the
changes arriving meanwhile are applied together (one read, one script, one ack) instead of one by one, and a full
batch (a backlog) is followed at once."""

from __future__ import annotations

from typing import Any

from services.dispatcher.app import gathered


class Recorded:
    """A batch handler and a sleep that keep what they were given, in order."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, Any]] = []

    async def handle(self, events: list[str], deps: Any) -> None:
        self.steps.append(("batch", list(events)))

    async def sleep(self, seconds: float) -> None:
        self.steps.append(("pause", seconds))


async def test_a_small_batch_is_followed_by_a_pause_and_a_full_one_is_not() -> None:
    seen = Recorded()
    handle = gathered(seen.handle, 0.1, max_records=3, sleep=seen.sleep)
    await handle(["a"], deps=None)
    await handle(["b", "c", "d"], deps=None)  # full: more are waiting, read them at once
    assert seen.steps == [("batch", ["a"]), ("pause", 0.1), ("batch", ["b", "c", "d"])]


async def test_no_window_reads_again_at_once() -> None:
    seen = Recorded()
    await gathered(seen.handle, 0.0, max_records=3, sleep=seen.sleep)(["a"], deps=None)
    assert seen.steps == [("batch", ["a"])]
