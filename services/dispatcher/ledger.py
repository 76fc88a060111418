"""The session ledger in Redis: a hash per session and one sorted set of watch deadlines.

Every state change is one Lua script or one MULTI, so replicas never interleave inside a change, and
claiming due watches re-scores them in the same script (a lease): two replicas never take the same one.
Keys are namespaced by agent name, so deployments sharing a Redis never touch each other's watches.
"""

from __future__ import annotations

from collections.abc import Mapping

from redis.asyncio import Redis

from contracts.keys import ledger_session_key, ledger_watchdog_key
from services.dispatcher.dispatch_state import DispatchState
from services.dispatcher.ports import SessionRecord

_REQUESTED, _WATCHING, _JOINED, _CLOSED = (state.value for state in DispatchState)

# KEYS: the record. ARGV: room, metadata, correlation id, ttl, ready deadline, count a try ('1'). Sets state, tries.
REMEMBER_LUA = f"""
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'room', ARGV[1], 'metadata', ARGV[2], 'correlation_id', ARGV[3], 'state', '{_REQUESTED}',
    'ready_deadline', ARGV[5])
elseif redis.call('HEXISTS', KEYS[1], 'room') == 0 then
  redis.call('HSET', KEYS[1], 'room', ARGV[1], 'metadata', ARGV[2], 'correlation_id', ARGV[3],
    'ready_deadline', ARGV[5])
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
local tries = 0
if ARGV[6] == '1' then tries = redis.call('HINCRBY', KEYS[1], 'tries', 1) - 1 end
local state = redis.call('HGET', KEYS[1], 'state')
"""
_REMEMBER = REMEMBER_LUA + "return {state, tries}"

# KEYS: the record, the watch set. ARGV: required state, session id, dispatch id, attempt, deadline, ttl. Sets armed.
WATCH_LUA = f"""
local armed = 0
if redis.call('HGET', KEYS[1], 'state') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', '{_WATCHING}', 'dispatch_id', ARGV[3], 'attempt', ARGV[4])
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  armed = 1
end
"""
_WATCH = WATCH_LUA + "return armed"

_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, sid in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], sid) end
return due
"""

# KEYS: the watch set, then one record per session. ARGV: ttl, then the session ids.
_JOINED_SCRIPT = f"""
for n = 2, #KEYS do
  if redis.call('HGET', KEYS[n], 'state') ~= '{_CLOSED}' then redis.call('HSET', KEYS[n], 'state', '{_JOINED}') end
  redis.call('ZREM', KEYS[1], ARGV[n])
  redis.call('EXPIRE', KEYS[n], ARGV[1])
end
return 1
"""


class RedisSessionLedger:
    """:class:`~services.dispatcher.ports.SessionLedger` on Redis; records live ``ttl_s`` after their last change."""

    def __init__(self, redis: Redis, agent_name: str, ttl_s: int = 86_400) -> None:
        self._redis = redis
        self._agent_name = agent_name
        self._watchdog = ledger_watchdog_key(agent_name)
        self._ttl_s = ttl_s
        self._remember = redis.register_script(_REMEMBER)
        self._watch = redis.register_script(_WATCH)
        self._claim = redis.register_script(_CLAIM)
        self._joined = redis.register_script(_JOINED_SCRIPT)

    def _key(self, session_id: str) -> str:
        return ledger_session_key(self._agent_name, session_id)

    async def remember(
        self, session_id: str, room_name: str, metadata: str, correlation_id: str, ready_deadline: float = 0.0
    ) -> DispatchState:
        """Record a requested session and its readiness deadline (first write wins); return its state."""
        state, _ = await self._remembered(session_id, room_name, metadata, correlation_id, ready_deadline, count=False)
        return state

    async def remember_try(
        self, session_id: str, room_name: str, metadata: str, correlation_id: str, ready_deadline: float = 0.0
    ) -> tuple[DispatchState, int]:
        """:meth:`remember`, counting a dispatch try; return the state and how many tries began before this one."""
        return await self._remembered(session_id, room_name, metadata, correlation_id, ready_deadline, count=True)

    async def _remembered(
        self, session_id: str, room_name: str, metadata: str, correlation_id: str, ready_deadline: float, *, count: bool
    ) -> tuple[DispatchState, int]:
        state, tries = await self._remember(
            keys=[self._key(session_id)],
            args=[room_name, metadata, correlation_id, self._ttl_s, repr(ready_deadline), "1" if count else "0"],
        )
        return DispatchState(_text(state)), int(tries)

    async def get(self, session_id: str) -> SessionRecord | None:
        """The record, if any."""
        return record_of(session_id, await self._redis.hgetall(self._key(session_id)))

    async def arm(self, session_id: str, dispatch_id: str, attempt: int, deadline: float) -> bool:
        """Watch a ``requested`` session until ``deadline``."""
        return await self._set_watch(DispatchState.REQUESTED, session_id, dispatch_id, attempt, deadline)

    async def rearm(self, session_id: str, dispatch_id: str, attempt: int, deadline: float) -> bool:
        """Record a re-dispatch of a ``watching`` session."""
        return await self._set_watch(DispatchState.WATCHING, session_id, dispatch_id, attempt, deadline)

    async def _set_watch(
        self, required: DispatchState, session_id: str, dispatch_id: str, attempt: int, deadline: float
    ) -> bool:
        done = await self._watch(
            keys=[self._key(session_id), self._watchdog],
            args=[required, session_id, dispatch_id, attempt, repr(deadline), self._ttl_s],
        )
        return bool(done)

    async def claim_due(self, now: float, lease_s: float, limit: int) -> list[SessionRecord]:
        """Take due watches under a lease; drop watches whose record has expired."""
        claimed = await self._claim(keys=[self._watchdog], args=[repr(now), repr(now + lease_s), limit])
        records: list[SessionRecord] = []
        for raw in claimed:
            session_id = _text(raw)
            record = await self.get(session_id)
            if record is None or record.state != DispatchState.WATCHING:
                await self._redis.zrem(self._watchdog, session_id)
                continue
            records.append(record)
        return records

    async def waiting(self) -> int:
        """How many dispatched sessions wait for their agent (the watch set, every replica's)."""
        return int(await self._redis.zcard(self._watchdog))

    async def next_due(self) -> float | None:
        """The earliest watch deadline, None when nothing is watched (one ZRANGE: the watchdog's idle look)."""
        earliest = await self._redis.zrange(self._watchdog, 0, 0, withscores=True)
        return float(earliest[0][1]) if earliest else None

    async def mark_joined(self, session_id: str) -> None:
        """Stop watching (a closed session stays closed)."""
        await self.mark_all_joined([session_id])

    async def mark_all_joined(self, session_ids: list[str]) -> None:
        """:meth:`mark_joined` for each session, in one round trip."""
        if session_ids:
            keys = [self._watchdog, *(self._key(session_id) for session_id in session_ids)]
            await self._joined(keys=keys, args=[self._ttl_s, *session_ids])

    async def note_failure(self, session_id: str, code: str, told: bool) -> None:
        """Record the failure's code (if any) and whether the room was told (once told, it stays told)."""
        key = self._key(session_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            if code:
                pipe.hset(key, "failure_code", code)
            if told:
                pipe.hset(key, "told_failure", "1")
            pipe.expire(key, self._ttl_s)
            await pipe.execute()

    async def close(self, session_id: str) -> SessionRecord | None:
        """Never dispatch or watch the session again; return its record."""
        key = self._key(session_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, "state", DispatchState.CLOSED.value)
            pipe.zrem(self._watchdog, session_id)
            pipe.expire(key, self._ttl_s)
            pipe.hgetall(key)
            *_, fields = await pipe.execute()
        return record_of(session_id, fields)


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def record_of(session_id: str, fields: Mapping[bytes | str, bytes | str]) -> SessionRecord | None:
    """The record stored in ``fields`` (a hash read from Redis), None when there is none."""
    if not fields:
        return None
    values = {_text(k): _text(v) for k, v in fields.items()}
    return SessionRecord(
        session_id=session_id,
        room_name=values.get("room", ""),
        metadata=values.get("metadata", ""),
        correlation_id=values.get("correlation_id", ""),
        state=DispatchState(values["state"]) if values.get("state") else DispatchState.REQUESTED,
        dispatch_id=values.get("dispatch_id", ""),
        attempt=int(values.get("attempt") or 0),
        ready_deadline=float(values.get("ready_deadline") or 0.0),
        failure_code=values.get("failure_code", ""),
        told_failure=values.get("told_failure") == "1",
    )
