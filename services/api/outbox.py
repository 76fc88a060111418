"""The API's one write on the hot path: the request event and a pending snapshot, in one Redis round trip."""

from __future__ import annotations

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from contracts.events import SessionRequested
from contracts.streams import SESSION_REQUESTED
from services.runtime.publishing import STREAM_MAXLEN


def snapshot_key(session_id: str) -> str:
    """Where the API keeps a requested session until the session store has recorded it."""
    return f"agentready:session-requested:{session_id}"


class RedisSessionOutbox:
    """XADD ``session.requested`` and SET the snapshot in one MULTI/EXEC transaction."""

    def __init__(self, broker: RedisBroker, redis: Redis, snapshot_ttl_s: int) -> None:
        self._broker = broker
        self._redis = redis
        self._ttl = snapshot_ttl_s

    async def announce(self, request: SessionRequested) -> None:
        """Publish the request; afterwards the session is visible and will be dispatched."""
        async with self._redis.pipeline(transaction=True) as pipe:
            await self._broker.publish(
                request,
                stream=SESSION_REQUESTED,
                correlation_id=request.correlation_id,
                maxlen=STREAM_MAXLEN,
                pipeline=pipe,
            )
            pipe.set(snapshot_key(request.session_id), request.model_dump_json(), ex=self._ttl)
            await pipe.execute()

    async def snapshot(self, session_id: str) -> SessionRequested | None:
        """Return the request of a session the session store may not have recorded yet."""
        raw = await self._redis.get(snapshot_key(session_id))
        return SessionRequested.model_validate_json(raw) if raw else None
