"""The one retry rule of every service: chosen errors retried with exponential backoff and jitter, bounded in
attempts and in total time; any other error raised at once, and the last retried one when the bounds run out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_exponential_jitter

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts and total time; the backoff starts at ``initial_s`` and grows to at most a quarter of the time."""

    attempts: int = 5
    max_seconds: float = 20.0
    initial_s: float = 0.1

    def describe(self) -> str:
        """The bounds, as a person reads them in a failure reason."""
        return f"{self.attempts} attempts / {self.max_seconds:g}s"


async def with_retries(
    policy: RetryPolicy,
    operation: Callable[[], Awaitable[T]],
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
) -> T:
    """Run ``operation`` until it succeeds, raises an error that is not ``retry_on``, or the bounds run out."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.max_seconds),
        wait=wait_exponential_jitter(multiplier=policy.initial_s, max=policy.max_seconds / 4, jitter=policy.initial_s),
        retry=retry_if_exception_type(retry_on),
        reraise=True,
    )
    result: T
    async for attempt in retrying:
        with attempt:
            result = await operation()
    return result
