"""Announce status changes, and free the organisation's admission slot when a session reaches a terminal status."""

from __future__ import annotations

from collections.abc import Sequence

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
        await self.publish_all([event])

    async def publish_all(self, events: Sequence[Event]) -> None:
        """Every event as :meth:`publish` does, all in one MULTI: all of them are published or none."""
        if not events:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            for event in events:
                stamped = tracing.stamped(event)
                await self._broker.publish(
                    stamped, stream=stream_for(type(stamped)), correlation_id=stamped.correlation_id, pipeline=pipe
                )
                if (
                    isinstance(stamped, SessionStatusChanged)
                    and stamped.org_id
                    and SessionStatus(stamped.to_status) in TERMINAL
                ):
                    pipe.zrem(open_sessions_key(stamped.org_id), stamped.session_id)
            await pipe.execute()
