"""The lease of a batch being handled: its messages' idle time reset while it runs, so no claimer takes them."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from services.runtime.tasks import cancel_and_wait

if TYPE_CHECKING:
    from collections.abc import Mapping

_LEASE_STOP_TIMEOUT_S = 1.0


class BatchLease:
    """Resets the idle time of the batch's messages every ``every_s`` while it runs (XCLAIM JUSTID), so no claimer
    takes them; stops at ``release`` or after ``for_at_most_s``. A timer, not a task: a batch shorter than
    ``every_s`` (nearly all) costs one timer. ``ids`` are the batch's message ids by stream (a batch may span
    several streams of ``group``)."""

    def __init__(
        self,
        redis: Redis,
        group: str,
        consumer: str,
        ids: Mapping[str, list[str]],
        every_s: float,
        for_at_most_s: float,
    ) -> None:
        self._redis, self._group, self._consumer, self._ids, self._every_s = redis, group, consumer, ids, every_s
        self._loop = asyncio.get_running_loop()
        self._until = self._loop.time() + for_at_most_s
        self._timer = self._loop.call_later(every_s, self._renew)
        self._task: asyncio.Task[None] | None = None

    def extend(self, for_at_most_s: float) -> None:
        """Keep renewing for at most ``for_at_most_s`` from now."""
        self._until = self._loop.time() + for_at_most_s

    def _renew(self) -> None:
        if self._loop.time() >= self._until:
            return
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._claim())
        self._timer = self._loop.call_later(self._every_s, self._renew)

    async def _claim(self) -> None:
        for stream, stream_ids in self._ids.items():
            ids: list[int | bytes | str | memoryview[int]] = list(stream_ids)
            try:
                await self._redis.xclaim(
                    stream, self._group, self._consumer, min_idle_time=0, message_ids=ids, justid=True
                )
            except redis_errors.RedisError:
                return  # best effort: Redis may be what is failing

    async def release(self) -> None:
        """Stop renewing (bounded)."""
        self._timer.cancel()
        if self._task is not None and not self._task.done():
            await cancel_and_wait(self._task, timeout_s=_LEASE_STOP_TIMEOUT_S, what="batch lease")
