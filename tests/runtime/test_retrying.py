"""The shared retry rule: bounded attempts, and errors that ask to be waited out (a Retry-After) not counted."""

from __future__ import annotations

import asyncio

import pytest

from services.runtime.retrying import RetryPolicy, with_retries


class _Failed(Exception):
    """An ordinary failure: counts as an attempt."""


class _Busy(_Failed):
    """A failure that asks to be waited out for ``pause_s`` (as a 503 with Retry-After does)."""

    def __init__(self, pause_s: float) -> None:
        super().__init__(f"busy, come back in {pause_s:g} s")
        self.pause_s = pause_s


def _busy_pause(error: BaseException) -> float | None:
    return error.pause_s if isinstance(error, _Busy) else None


class _Scripted:
    """Raises the scripted errors in order, then answers "done"; counts its calls."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


FAST = RetryPolicy(attempts=3, max_seconds=1, initial_s=0.001)  # backoff at most 0.25 s


async def test_errors_waited_out_do_not_use_up_the_attempts() -> None:
    operation = _Scripted([_Busy(0)] * 10 + [_Failed("a"), _Failed("b")])
    assert await with_retries(FAST, operation, _Failed, wait_out=_busy_pause) == "done"
    assert operation.calls == 13, "ten waited-out errors did not count: only the two failures were attempts"


async def test_without_the_hook_every_failure_is_an_attempt() -> None:
    operation = _Scripted([_Busy(0)] * 10)
    with pytest.raises(_Busy):
        await with_retries(FAST, operation, _Failed)
    assert operation.calls == FAST.attempts


async def test_ordinary_failures_stay_bounded_among_waited_out_ones() -> None:
    operation = _Scripted([_Busy(0), _Failed("a"), _Busy(0), _Failed("b"), _Busy(0), _Failed("c"), _Busy(0)])
    with pytest.raises(_Failed, match=r"^c$"):
        await with_retries(FAST, operation, _Failed, wait_out=_busy_pause)
    assert operation.calls == 6, "the third ordinary failure ends the retries"


async def test_waiting_out_is_bounded_by_the_overall_deadline() -> None:
    operation = _Scripted([_Busy(0.4)] * 100)
    policy = RetryPolicy(attempts=3, max_seconds=0.1, initial_s=0.001)
    with pytest.raises(_Busy, match=r"come back in 0\.4 s"):
        await with_retries(policy, operation, _Failed, wait_out=_busy_pause)
    assert 1 <= operation.calls <= 2, "a 0.4 s pause (0.2 to 0.6 s jittered) outlasts the 0.1 s deadline"


async def test_an_error_not_retried_is_raised_at_once_even_if_it_would_be_waited_out() -> None:
    operation = _Scripted([_Busy(0)])
    with pytest.raises(_Busy):
        await with_retries(FAST, operation, KeyError, wait_out=_busy_pause)
    assert operation.calls == 1


async def test_one_attempt_means_the_first_failure_is_raised() -> None:
    operation = _Scripted([_Failed("only")])
    with pytest.raises(_Failed, match=r"^only$"):
        await with_retries(RetryPolicy(attempts=1, max_seconds=5, initial_s=0.001), operation, _Failed)
    assert operation.calls == 1


async def test_the_first_attempts_time_counts_toward_the_deadline() -> None:
    calls = 0

    async def slow_then_failing() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.15)  # longer than the whole deadline
        raise _Failed("slow")

    with pytest.raises(_Failed, match=r"^slow$"):
        await with_retries(RetryPolicy(attempts=5, max_seconds=0.1, initial_s=0.001), slow_then_failing, _Failed)
    assert calls == 1, "the deadline had passed when the first attempt failed: no second one"
