"""The room sweep's live sessions in Redis: a sorted set of due times and a hash of each session's room.

Claiming re-scores the claimed entries in the same script (like the watchdog's lease), so replicas sweeping
at once take disjoint sessions. Keys are namespaced by agent name, as the ledger's are.
"""

from __future__ import annotations

import json

from redis.asyncio import Redis

from services.dispatcher.room_sweep import LiveSession

_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, sid in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], sid) end
return due
"""


def live_keys(agent_name: str) -> tuple[str, str]:
    """The sorted set of due times and the hash of rooms of ``agent_name``'s live sessions."""
    prefix = f"agentready:dispatcher:{agent_name}:live"
    return f"{prefix}:due", f"{prefix}:rooms"


class RedisLiveSessions:
    """:class:`~services.dispatcher.room_sweep.LiveSessions` on Redis."""

    def __init__(self, redis: Redis, agent_name: str) -> None:
        self._redis = redis
        self._due, self._rooms = live_keys(agent_name)
        self._claim = redis.register_script(_CLAIM)

    async def track(self, session: LiveSession, first_check_at: float) -> None:
        """Watch the session; one already watched keeps its due time."""
        room = json.dumps({"room": session.room_name, "correlation_id": session.correlation_id})
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._rooms, session.session_id, room)
            pipe.zadd(self._due, {session.session_id: first_check_at}, nx=True)
            await pipe.execute()

    async def untrack(self, session_id: str) -> None:
        """Stop watching the session."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._due, session_id)
            pipe.hdel(self._rooms, session_id)
            await pipe.execute()

    async def claim_due(self, now: float, next_check_at: float, limit: int) -> list[LiveSession]:
        """Take the due sessions (due again at ``next_check_at``); drop entries whose room is unknown."""
        claimed = [_text(raw) for raw in await self._claim(keys=[self._due], args=[now, next_check_at, limit])]
        if not claimed:
            return []
        found: list[LiveSession] = []
        for session_id, raw in zip(claimed, await self._redis.hmget(self._rooms, claimed), strict=True):
            if raw is None:
                await self.untrack(session_id)
                continue
            fields = json.loads(raw)
            found.append(LiveSession(session_id, fields["room"], fields.get("correlation_id", "")))
        return found

    async def watched(self) -> int:
        """How many sessions are watched (every replica's)."""
        return int(await self._redis.zcard(self._due))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
