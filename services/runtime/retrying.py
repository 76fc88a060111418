"""The one retry rule of every service: chosen errors retried with exponential backoff and jitter, bounded in
attempts and in total time; any other error raised at once, and the last retried one when the bounds run out.

An error can also ask to be waited out (``wait_out``: a 503's Retry-After, a server shedding load rather than
failing): it is retried after the pause it asks for, jittered so a crowd of callers does not come back together,
without counting as an attempt; the total time bound still holds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay, stop_any
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential_jitter

T = TypeVar("T")

WaitOut = Callable[[BaseException], float | None]
"""Seconds an error asks to be waited out for (not counted as an attempt), or None for an ordinary failure."""


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts and total time; the backoff starts at ``initial_s`` and grows to at most a quarter of the time."""

    attempts: int = 5
    max_seconds: float = 20.0
    initial_s: float = 0.1

    def describe(self) -> str:
        """The bounds, as a person reads them in a failure reason."""
        return f"{self.attempts} attempts / {self.max_seconds:g}s"


def _never_waited_out(_: BaseException) -> float | None:
    return None


def _asked_pause(wait_out: WaitOut, state: RetryCallState) -> float | None:
    error = state.outcome.exception() if state.outcome else None
    return wait_out(error) if error is not None else None


class _AttemptsNotWaitedOut(stop_base):
    """Stop once ``attempts`` tries failed other than by an error that is waited out."""

    def __init__(self, attempts: int, wait_out: WaitOut) -> None:
        self._attempts = attempts
        self._wait_out = wait_out
        self._failures = 0

    def __call__(self, retry_state: RetryCallState) -> bool:
        if _asked_pause(self._wait_out, retry_state) is None:
            self._failures += 1
        return self._failures >= self._attempts


async def with_retries(
    policy: RetryPolicy,
    operation: Callable[[], Awaitable[T]],
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    *,
    wait_out: WaitOut = _never_waited_out,
) -> T:
    """Run ``operation`` until it succeeds, raises an error that is not ``retry_on``, or the bounds run out.

    A ``retry_on`` error for which ``wait_out`` gives seconds is retried after that pause (times 0.5 to 1.5) and
    does not count as an attempt; only ``policy.max_seconds`` bounds those."""
    started = time.monotonic()
    try:
        return await operation()  # nearly every call: no retry machinery built for it (~27 µs of CPU a call)
    except retry_on as exc:
        first: BaseException | None = exc

    async def replayed() -> T:
        """The first attempt's failure, replayed as tenacity's first attempt; then ``operation`` again."""
        nonlocal first
        if first is not None:
            failure, first = first, None
            raise failure
        return await operation()

    backoff = wait_exponential_jitter(multiplier=policy.initial_s, max=policy.max_seconds / 4, jitter=policy.initial_s)

    def wait(state: RetryCallState) -> float:
        pause = _asked_pause(wait_out, state)
        return backoff(state) if pause is None else pause * random.uniform(0.5, 1.5)

    left_s = max(0.0, policy.max_seconds - (time.monotonic() - started))  # the first attempt's time counts
    retrying = AsyncRetrying(
        stop=stop_any(_AttemptsNotWaitedOut(policy.attempts, wait_out), stop_after_delay(left_s)),
        wait=wait,
        retry=retry_if_exception_type(retry_on),
        reraise=True,
    )
    result: T
    async for attempt in retrying:
        with attempt:
            result = await replayed()
    return result
