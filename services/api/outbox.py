"""The API's Redis writes on the hot path: admission (with idempotency) in one script, then the announcement.

1. ``admit``: one Lua script, atomic: replay a remembered Idempotency-Key, else check the organisation's cap of
   open sessions, take a slot and remember the key.
2. ``announce``: one MULTI: XADD ``session.requested`` and SET the pending snapshot (which also marks it announced).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Literal

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from contracts.events import SessionRequested
from contracts.keys import open_sessions_key
from contracts.streams import SESSION_REQUESTED

_ADMIT = """
if ARGV[6] == '1' then
    local existing = redis.call('GET', KEYS[2])
    if existing then return {1, existing} end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return {2, ''} end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
if ARGV[6] == '1' then redis.call('SET', KEYS[2], ARGV[7], 'EX', ARGV[8]) end
return {0, ''}
"""


def snapshot_key(session_id: str) -> str:
    """Where the API keeps a requested session until the session store has recorded it."""
    return f"agentready:session-requested:{session_id}"


def idempotency_key(org_id: str, key: str) -> str:
    """Where a request's Idempotency-Key is remembered, per organisation (hashed: keys are client-chosen)."""
    return f"agentready:idempotency:{org_id}:{hashlib.sha256(key.encode()).hexdigest()}"


@dataclass(frozen=True)
class Admission:
    """How admission went: a new session, a replay of a remembered one (its record), or over the cap."""

    outcome: Literal["admitted", "replay", "full"]
    record: str | None = None


@dataclass(frozen=True)
class AdmissionPolicy:
    """The per-organisation cap and how long things are remembered."""

    max_open: int
    lease_s: int
    idempotency_ttl_s: int


class RedisSessionOutbox:
    """Admission, announcement and snapshots of requested sessions, in Redis."""

    def __init__(self, broker: RedisBroker, redis: Redis, snapshot_ttl_s: int, policy: AdmissionPolicy) -> None:
        self._broker = broker
        self._redis = redis
        self._ttl = snapshot_ttl_s
        self._policy = policy
        self._admit = redis.register_script(_ADMIT)

    async def admit(self, org_id: str, session_id: str, idem_key: str | None, record: str) -> Admission:
        """Replay the record remembered for ``idem_key``, or take an open-session slot and remember ``record``."""
        now = time.time()
        keys = [open_sessions_key(org_id), idempotency_key(org_id, idem_key or "")]
        args: list[str | int | float] = [
            now,
            self._policy.max_open,
            session_id,
            now + self._policy.lease_s,
            self._policy.lease_s,
            "1" if idem_key else "0",
            record,
            self._policy.idempotency_ttl_s,
        ]
        code, value = await self._admit(keys=keys, args=args)
        if int(code) == 1:
            return Admission("replay", value.decode() if isinstance(value, bytes) else str(value))
        return Admission("full" if int(code) == 2 else "admitted")

    async def release(self, org_id: str, session_id: str) -> None:
        """Give a slot back (the announcement failed)."""
        await self._redis.zrem(open_sessions_key(org_id), session_id)

    async def announce(self, request: SessionRequested) -> None:
        """Publish the request; afterwards the session is visible and will be dispatched."""
        async with self._redis.pipeline(transaction=True) as pipe:
            await self._broker.publish(
                request,
                stream=SESSION_REQUESTED,
                correlation_id=request.correlation_id,
                pipeline=pipe,
            )
            pipe.set(snapshot_key(request.session_id), request.model_dump_json(), ex=self._ttl)
            await pipe.execute()

    async def snapshot(self, session_id: str) -> SessionRequested | None:
        """Return the request of a session the session store may not have recorded yet."""
        raw = await self._redis.get(snapshot_key(session_id))
        return SessionRequested.model_validate_json(raw) if raw else None
