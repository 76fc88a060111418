"""Session admission in Redis, the API's hot path: idempotency, the per-organisation cap and the announcement
(XADD ``session.requested``) in one round trip.

``admit`` runs one Lua script, atomic: replay a remembered Idempotency-Key, else check the organisation's cap of
open sessions; when there is room, XADD ``session.requested``, take a slot, remember the key and SET the pending
snapshot (which also marks the session announced). The stream entry is encoded with the broker's own message
format, its body the model's JSON as FastStream serialises it (the snapshot's bytes too): subscribers read exactly
what ``broker.publish`` would have written (tests/api/test_admission_script.py compares the bytes), without the
publish machinery's ~20 µs per request (docs/performance.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from faststream.redis import RedisBroker
from faststream.redis.message import DATA_KEY
from redis.asyncio import Redis

from contracts.events import SessionRequested
from contracts.keys import idempotency_key, open_sessions_key, session_snapshot_key
from contracts.streams import SESSION_REQUESTED

# The headers ``broker.publish`` adds to a JSON body besides the correlation id (FastStream's message format).
_JSON = {"content-type": "application/json"}

# KEYS: 1 open sessions, 2 idempotency key, 3 stream, 4 snapshot.
# ARGV: 1 now, 2 session id, 3 record ('' without an idempotency key), 4 snapshot, 5.. the stream entry's
#       field/value pairs. The policy's numbers are written into the script itself (``_script``): every argument
#       costs the hot path packing and Redis parsing on each request, and these never change.
# XADD is the first write that can be refused (OOM, wrong type): an error there leaves no slot and no key behind.
# No MAXLEN, as in services.runtime.publishing: streams are trimmed below every group's oldest needed entry.
_ADMIT = """
local remembered = ARGV[3] ~= ''
if remembered then
    local existing = redis.call('GET', KEYS[2])
    if existing then return {1, existing} end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= {max_open} then return {2, ''} end
redis.call('XADD', KEYS[3], '*', unpack(ARGV, 5))
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + {lease_s}, ARGV[2])
redis.call('EXPIRE', KEYS[1], {lease_s})
if remembered then redis.call('SET', KEYS[2], ARGV[3], 'EX', {idempotency_ttl_s}) end
redis.call('SET', KEYS[4], ARGV[4], 'EX', {snapshot_ttl_s})
return {0, ''}
"""


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


def _script(policy: AdmissionPolicy, snapshot_ttl_s: int) -> str:
    """The admission script with the policy's numbers in it (integers: nothing but digits goes into the Lua)."""
    numbers = {
        "max_open": policy.max_open,
        "lease_s": policy.lease_s,
        "idempotency_ttl_s": policy.idempotency_ttl_s,
        "snapshot_ttl_s": snapshot_ttl_s,
    }
    script = _ADMIT
    for name, value in numbers.items():
        script = script.replace("{" + name + "}", str(int(value)))
    return script


class RedisSessionAdmission:
    """:class:`~services.api.session_core.SessionAdmission` in Redis: admission, announcement and snapshots of
    requested sessions."""

    def __init__(self, broker: RedisBroker, redis: Redis, snapshot_ttl_s: int, policy: AdmissionPolicy) -> None:
        self._broker = broker
        self._redis = redis
        self._ttl = snapshot_ttl_s
        self._policy = policy
        self._admit = redis.register_script(_script(policy, snapshot_ttl_s))

    async def admit(self, request: SessionRequested, idem_key: str | None, record: str) -> Admission:
        """Replay the record remembered for ``idem_key``, or say the organisation is full, or take a slot,
        remember ``record`` and announce ``request``: one script, one round trip."""
        snapshot = request.model_dump_json().encode()  # also the entry's body: FastStream serialises a model so
        envelope = await self._broker.message_format.encode(
            message=snapshot, reply_to=None, headers=_JSON, correlation_id=request.correlation_id
        )
        org_id, session_id = request.org_id, request.session_id
        idem = idempotency_key(org_id, idem_key or "")
        keys = [open_sessions_key(org_id), idem, SESSION_REQUESTED, session_snapshot_key(session_id)]
        args: list[str | bytes | float] = [time.time(), session_id, record if idem_key else "", snapshot]
        args += (DATA_KEY, envelope)
        code, value = await self._admit(keys=keys, args=args)
        if int(code) == 1:
            return Admission("replay", value.decode() if isinstance(value, bytes) else str(value))
        return Admission("full" if int(code) == 2 else "admitted")

    async def release(self, org_id: str, session_id: str) -> None:
        """Give a slot back (admission failed, or its answer was lost)."""
        await self._redis.zrem(open_sessions_key(org_id), session_id)

    async def announce(self, request: SessionRequested) -> None:
        """Publish the request and SET its snapshot (a replay whose first attempt left no snapshot)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            await self._broker.publish(
                request,
                stream=SESSION_REQUESTED,
                correlation_id=request.correlation_id,
                pipeline=pipe,
            )
            pipe.set(session_snapshot_key(request.session_id), request.model_dump_json(), ex=self._ttl)
            await pipe.execute()

    async def snapshot(self, session_id: str) -> SessionRequested | None:
        """Return the request of a session the session store may not have recorded yet."""
        raw = await self._redis.get(session_snapshot_key(session_id))
        return SessionRequested.model_validate_json(raw) if raw else None
