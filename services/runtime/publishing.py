"""Publishing contract events to their streams through a FastStream Redis broker."""

from __future__ import annotations

from faststream.redis import RedisBroker

from contracts.events import Event
from contracts.streams import stream_for

# No MAXLEN on any publish: MAXLEN ~ can overtake a lagging group and silently drop entries it never read.
# Streams are trimmed by services.runtime.trimming, only below every group's oldest needed entry.


class BrokerPublisher:
    """Publishes each event to the stream of its type, correlation id carried in the headers."""

    def __init__(self, broker: RedisBroker) -> None:
        self._broker = broker

    async def publish(self, event: Event) -> None:
        """Publish one event (one XADD)."""
        await self._broker.publish(event, stream=stream_for(type(event)), correlation_id=event.correlation_id)
