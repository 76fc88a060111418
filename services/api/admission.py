"""Session admission in Redis, the API's hot path: idempotency, the per-organisation cap and the announcement
(XADD ``session.requested``) in one round trip.

``admit`` runs one Lua script, atomic: replay a remembered Idempotency-Key, else check the organisation's cap of
open sessions; when there is room, XADD ``session.requested``, take a slot, remember the key and SET the pending
snapshot (which also marks the session announced). The stream entry is encoded by the FastStream broker itself,
so subscribers read exactly what ``broker.publish`` would have written.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from contracts.events import SessionRequested
from contracts.keys import idempotency_key, open_sessions_key, session_snapshot_key
from contracts.streams import SESSION_REQUESTED

if TYPE_CHECKING:
    from redis.asyncio.client import Pipeline

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


class _EncodedEntry:
    """Stands in for a pipeline: the broker encodes a stream entry as it would publish it, and it is kept here."""

    def __init__(self) -> None:
        self.stream = ""
        self.fields: dict[str | bytes, str | bytes | int | float] = {}

    async def xadd(
        self, name: str, fields: Mapping[str | bytes, str | bytes | int | float], maxlen: int | None = None
    ) -> bytes:
        """Keep what ``XADD name * fields`` would send (the broker's only call on a pipeline for a stream)."""
        if maxlen is not None:
            raise ValueError("session.requested is published without MAXLEN")
        self.stream, self.fields = name, dict(fields)
        return b""

    def args(self) -> list[str | bytes | int | float]:
        """The entry's field/value pairs, flat, as XADD takes them."""
        return [item for pair in self.fields.items() for item in pair]


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
        entry = await self._encode(request)
        org_id, session_id = request.org_id, request.session_id
        idem = idempotency_key(org_id, idem_key or "")
        keys = [open_sessions_key(org_id), idem, entry.stream, session_snapshot_key(session_id)]
        args = [time.time(), session_id, record if idem_key else "", request.model_dump_json(), *entry.args()]
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

    async def _encode(self, request: SessionRequested) -> _EncodedEntry:
        """The ``session.requested`` entry exactly as ``broker.publish`` writes it (envelope, headers, ids)."""
        entry = _EncodedEntry()
        await self._broker.publish(
            request,
            stream=SESSION_REQUESTED,
            correlation_id=request.correlation_id,
            pipeline=cast("Pipeline", entry),
        )
        return entry
