"""Per-session numbering of flow events in Redis, shared by every dispatcher replica.

One hash per session: a counter and message id -> number, so a redelivered event keeps its number
(watchers drop a number they have already seen) and numbers only grow, whichever replica relays.
"""

from __future__ import annotations

from redis.asyncio import Redis

from contracts.keys import flow_seq_key

_SEQ = """
local seen = redis.call('HGET', KEYS[1], ARGV[1])
if seen then return tonumber(seen) end
local seq = redis.call('HINCRBY', KEYS[1], '#seq', 1)
redis.call('HSET', KEYS[1], ARGV[1], seq)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return seq
"""


class RedisFlowSequencer:
    """:class:`~services.dispatcher.flow_relay.FlowSequencer` on Redis; a session's numbers live ``ttl_s`` s."""

    def __init__(self, redis: Redis, ttl_s: int = 86_400) -> None:
        self._seq = redis.register_script(_SEQ)
        self._ttl_s = ttl_s

    async def seq_for(self, session_id: str, message_id: str) -> int:
        """The message's number within its session (1, 2, ...)."""
        return int(await self._seq(keys=[flow_seq_key(session_id)], args=[message_id, self._ttl_s]))
