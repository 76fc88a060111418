"""Announce status changes, and free the organisation's admission slot when a session reaches a terminal status."""

from __future__ import annotations

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from contracts.events import Event, SessionStatusChanged
from contracts.keys import open_sessions_key
from contracts.status import TERMINAL, SessionStatus
from contracts.streams import stream_for
from services.runtime import tracing


class StatusAnnouncer:
    """:class:`~services.runtime.publishing.EventPublisher` whose terminal ``session.status_changed`` also leaves the
    open-sessions set, in one MULTI."""

    def __init__(self, broker: RedisBroker, redis: Redis) -> None:
        self._broker = broker
        self._redis = redis

    async def publish(self, event: Event) -> None:
        """XADD the event (and ZREM the admission slot when the session is now terminal), in the current trace."""
        event = tracing.stamped(event)
        async with self._redis.pipeline(transaction=True) as pipe:
            await self._broker.publish(
                event,
                stream=stream_for(type(event)),
                correlation_id=event.correlation_id,
                pipeline=pipe,
            )
            if isinstance(event, SessionStatusChanged) and event.org_id and SessionStatus(event.to_status) in TERMINAL:
                pipe.zrem(open_sessions_key(event.org_id), event.session_id)
            await pipe.execute()
