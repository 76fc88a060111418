"""Publishing lifecycle events from a job process: :class:`~services.runtime.publishing.EventPublisher` on Redis
Streams, connecting lazily and retrying a Redis blip."""

from __future__ import annotations

import asyncio

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from contracts.events import Event
from contracts.keys import watched_room_key
from contracts.streams import stream_for
from services.runtime import tracing
from services.runtime.broker import new_broker
from services.runtime.retrying import RetryPolicy, with_retries

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisEventPublisher:
    """:class:`~services.runtime.publishing.EventPublisher` through a FastStream broker that connects on first use.

    Build it once per job process (no I/O in the constructor); connect happens lazily inside the
    job's event loop, and :meth:`close` must run before that loop ends.
    """

    def __init__(self, redis_url: str, *, attempts: int = 6, max_seconds: float = 15.0) -> None:
        self._broker = new_broker(redis_url)
        self._retry = RetryPolicy(attempts, max_seconds, initial_s=0.1)
        self._connected = False
        self._lock: asyncio.Lock | None = None

    async def _ensure_connected(self) -> None:
        if self._connected:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._connected:
                await self._broker.connect()
                self._connected = True

    async def publish(self, event: Event) -> None:
        """XADD ``event`` (JSON) to ``stream_for(type(event))``, with its correlation id in the envelope.

        A Redis restart or blip is retried (bounded in attempts and time), so ``agent.ready`` survives it;
        the event's message id makes a duplicate after an ambiguous failure harmless downstream.
        """

        event = tracing.stamped(event)  # the session's trace, through the job's span (services.agent.job_trace)

        async def once() -> None:
            await self._ensure_connected()
            await self._broker.publish(event, stream=stream_for(type(event)), correlation_id=event.correlation_id)

        await with_retries(self._retry, once, _REDIS_DOWN)

    async def room_watched(self, room_name: str) -> bool:
        """True when a watcher token was minted for ``room_name`` (the flow-events relay serves only those)."""
        await self._ensure_connected()
        redis = await self._broker.connect()
        return bool(await redis.exists(watched_room_key(room_name)))

    async def close(self) -> None:
        """Close the connection, if one was opened; the publisher can connect again afterwards."""
        if self._connected:
            self._connected = False
            self._lock = None
            await self._broker.stop()
