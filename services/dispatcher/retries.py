"""The one retry rule for LiveKit calls: transient errors retried with exponential backoff and jitter,
bounded in attempts and in total time; permanent errors raised at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_exponential_jitter

from services.dispatcher.ports import TransientLiveKitError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for transient LiveKit failures: attempts and total time, exponential backoff with jitter."""

    attempts: int = 5
    max_seconds: float = 20.0
    initial_s: float = 0.1

    def describe(self) -> str:
        """The bounds, as a person reads them in a failure reason."""
        return f"{self.attempts} attempts / {self.max_seconds:g}s"


async def with_retries(policy: RetryPolicy, operation: Callable[[], Awaitable[T]]) -> T:
    """Run ``operation`` until it succeeds, raises a non-transient error, or the bounds run out
    (then its last :class:`TransientLiveKitError` is raised)."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.max_seconds),
        wait=wait_exponential_jitter(multiplier=policy.initial_s, max=policy.max_seconds / 4, jitter=policy.initial_s),
        retry=retry_if_exception_type(TransientLiveKitError),
        reraise=True,
    )
    result: T
    async for attempt in retrying:
        with attempt:
            result = await operation()
    return result
