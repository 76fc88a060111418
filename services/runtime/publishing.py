"""Publishing contract events to their streams through a FastStream Redis broker."""

from __future__ import annotations

from faststream.redis import RedisBroker

from contracts.events import Event
from contracts.streams import stream_for

# Trim generously: a stream is capped far above any plausible consumer lag, never below it.
STREAM_MAXLEN = 1_000_000


class BrokerPublisher:
    """Publishes each event to the stream of its type, correlation id carried in the headers."""

    def __init__(self, broker: RedisBroker) -> None:
        self._broker = broker

    async def publish(self, event: Event) -> None:
        """Publish one event (one XADD)."""
        await self._broker.publish(
            event, stream=stream_for(type(event)), correlation_id=event.correlation_id, maxlen=STREAM_MAXLEN
        )
