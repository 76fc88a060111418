"""cancel_and_wait: bounded, and never swallows a cancellation aimed at the caller (Python 3.11's wait_for hazard)."""

from __future__ import annotations

import asyncio

import pytest

from services.runtime.tasks import cancel_and_wait


async def _sleeps() -> None:
    await asyncio.sleep(60)


async def _loses_its_cancellation(stop: asyncio.Event) -> None:
    # what a redis-py command inside 3.11's asyncio.wait_for can do: the cancellation is dropped, the task goes on
    while not stop.is_set():
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            continue


async def test_a_task_that_honours_its_cancellation_is_waited_for() -> None:
    task = asyncio.create_task(_sleeps())
    await asyncio.sleep(0)
    assert await cancel_and_wait(task, timeout_s=5, what="sleeper")
    assert task.cancelled()


async def test_a_task_that_loses_its_cancellation_is_waited_for_no_longer_than_the_bound() -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(_loses_its_cancellation(stop))
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert not await cancel_and_wait(task, timeout_s=0.2, what="stubborn")
    assert loop.time() - started < 2
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_the_callers_own_cancellation_is_not_swallowed() -> None:
    stop = asyncio.Event()
    stubborn = asyncio.create_task(_loses_its_cancellation(stop))
    await asyncio.sleep(0)
    caller = asyncio.create_task(cancel_and_wait(stubborn, timeout_s=30, what="stubborn"))
    await asyncio.sleep(0.05)
    caller.cancel()  # e.g. the delivery's handler deadline
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(caller, 5)
    stop.set()
    await asyncio.wait_for(stubborn, 5)
