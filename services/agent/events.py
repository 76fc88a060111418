"""Publishing lifecycle events: the :class:`EventPublisher` port and its Redis Streams implementation."""

from __future__ import annotations

import asyncio
from typing import Protocol

from faststream.redis import RedisBroker

from contracts.events import Event
from contracts.streams import stream_for


class EventPublisher(Protocol):
    """Sends one lifecycle event to the broker."""

    async def publish(self, event: Event) -> None:
        """Publish ``event`` on its stream; raise if the broker did not take it."""


class RedisEventPublisher:
    """Publishes to the event's Redis stream through a FastStream broker that connects on first use.

    Build it once per job process (no I/O in the constructor); connect happens lazily inside the
    job's event loop, and :meth:`close` must run before that loop ends.
    """

    def __init__(self, redis_url: str) -> None:
        self._broker = RedisBroker(redis_url)
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
        """XADD ``event`` (JSON) to ``stream_for(type(event))``, with its correlation id in the envelope."""
        await self._ensure_connected()
        await self._broker.publish(event, stream=stream_for(type(event)), correlation_id=event.correlation_id)

    async def close(self) -> None:
        """Close the connection, if one was opened; the publisher can connect again afterwards."""
        if self._connected:
            self._connected = False
            self._lock = None
            await self._broker.stop()
