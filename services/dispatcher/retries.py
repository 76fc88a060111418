"""The retry rule for LiveKit calls: transient errors retried (bounded, see ``services.runtime.retrying``),
permanent errors raised at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from services.dispatcher.ports import TransientLiveKitError
from services.runtime import retrying
from services.runtime.retrying import RetryPolicy

__all__ = ["RetryPolicy", "with_retries"]

T = TypeVar("T")


async def with_retries(policy: RetryPolicy, operation: Callable[[], Awaitable[T]]) -> T:
    """Run ``operation`` until it succeeds, raises a non-transient error, or the bounds run out
    (then its last :class:`TransientLiveKitError` is raised)."""
    return await retrying.with_retries(policy, operation, TransientLiveKitError)
