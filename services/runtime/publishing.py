"""Publishing contract events: the one :class:`EventPublisher` port every service's core depends on, and its
FastStream Redis implementation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from contracts.events import Event
from contracts.streams import stream_for
from services.runtime import tracing

if TYPE_CHECKING:
    from faststream.redis import RedisBroker
    from redis.asyncio.client import Pipeline

# No MAXLEN on any publish: MAXLEN ~ can overtake a lagging group and silently drop entries it never read.
# Streams are trimmed by services.runtime.trimming, only below every group's oldest needed entry.


class EventPublisher(Protocol):
    """Publishes one event to the broker, on the stream of its type."""

    async def publish(self, event: Event) -> None:
        """Publish ``event``; raise if the broker did not take it."""
        ...


class BrokerPublisher:
    """:class:`EventPublisher` on a FastStream Redis broker, correlation id carried in the headers."""

    def __init__(self, broker: RedisBroker) -> None:
        self._broker = broker

    async def publish(self, event: Event) -> None:
        """Publish one event (one XADD), carrying the current trace context."""
        event = tracing.stamped(event)
        await self._broker.publish(event, stream=stream_for(type(event)), correlation_id=event.correlation_id)

    async def publish_in(self, pipeline: Pipeline, event: Event) -> None:
        """Queue :meth:`publish`'s XADD of ``event`` in ``pipeline`` (sent when the caller executes it, with whatever
        else it holds: one round trip)."""
        event = tracing.stamped(event)
        await self._broker.publish(
            event, stream=stream_for(type(event)), correlation_id=event.correlation_id, pipeline=pipeline
        )
