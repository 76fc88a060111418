"""What a ``session.status_changed`` does to the dispatcher's own state, and what the handler needs to know of it.

Every status change reads the session's ledger record (its room) and whether the room is watched (lifecycle flow
events); a change to ``agent_joined`` / ``ready`` starts the room sweep's watch, a terminal one stops it and closes the
session in the ledger (never dispatched or watched again). :class:`RedisStatusChanges` does all of that in one Lua
script, one round trip per message: most changes (``pending``, ``dispatched`` of an unwatched room) need nothing else.
:class:`PortStatusChanges` does the same through the separate ports (fakes in tests).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from contracts.events import SessionStatusChanged
from contracts.keys import ledger_session_key, ledger_watchdog_key, watched_room_key
from contracts.status import TERMINAL
from services.dispatcher.dispatch_state import DispatchState
from services.dispatcher.ledger import record_of
from services.dispatcher.live_sessions import live_keys
from services.dispatcher.ports import SessionLedger, SessionRecord
from services.dispatcher.room_sweep import LIVE_STATUSES, LiveSession, LiveSessions

_TERMINAL = frozenset(status.value for status in TERMINAL)
TRACK, CLOSE, NOTHING = "track", "close", ""


def action_for(to_status: str) -> str:
    """What the change does to the dispatcher's state: track a live session, close a terminal one, or nothing."""
    if to_status in LIVE_STATUSES:
        return TRACK
    return CLOSE if to_status in _TERMINAL else NOTHING


@dataclass(frozen=True)
class ChangeView:
    """The session's ledger record as it was before the change (None: never requested here) and whether its room
    is watched."""

    record: SessionRecord | None
    watched: bool


class StatusChanges(Protocol):
    """Applies a status change to the ledger and the room sweep's live sessions."""

    async def apply(self, event: SessionStatusChanged, first_check_at: float) -> ChangeView:
        """Track (first looked at ``first_check_at``), untrack and close as :func:`action_for` says; return the view."""
        ...


# KEYS: ledger record, watchdog set, live due set, live rooms hash.
# ARGV: session id, action, first check at, correlation id, ttl, watched-room key prefix, sweep (1/0).
# The watched-room key is derived from the record's room inside the script (not declared in KEYS): fine on one
# Redis server, which is how the services use it (a cluster would need the room in a hash tag).
_APPLY = f"""
local rec = redis.call('HGETALL', KEYS[1])
local room = ''
for i = 1, #rec, 2 do if rec[i] == 'room' then room = rec[i + 1] end end
local watched = 0
if room ~= '' then watched = redis.call('EXISTS', ARGV[6] .. room) end
if ARGV[2] == '{TRACK}' then
  if ARGV[7] == '1' and room ~= '' then
    redis.call('HSET', KEYS[4], ARGV[1], cjson.encode({{room = room, correlation_id = ARGV[4]}}))
    redis.call('ZADD', KEYS[3], 'NX', ARGV[3], ARGV[1])
  end
elseif ARGV[2] == '{CLOSE}' then
  if ARGV[7] == '1' then
    redis.call('ZREM', KEYS[3], ARGV[1])
    redis.call('HDEL', KEYS[4], ARGV[1])
  end
  redis.call('HSET', KEYS[1], 'state', '{DispatchState.CLOSED.value}')
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
return {{watched, rec}}
"""


class RedisStatusChanges:
    """:class:`StatusChanges` in one Lua script per change; ``sweep`` False: no room sweep to track for."""

    def __init__(self, redis: Redis, agent_name: str, ttl_s: int, *, sweep: bool = True) -> None:
        self._agent_name = agent_name
        self._watchdog = ledger_watchdog_key(agent_name)
        self._live_due, self._live_rooms = live_keys(agent_name)
        self._watched_prefix = watched_room_key("")
        self._ttl_s = ttl_s
        self._sweep = "1" if sweep else "0"
        self._apply = redis.register_script(_APPLY)

    async def apply(self, event: SessionStatusChanged, first_check_at: float) -> ChangeView:
        """One round trip: read the record and the room's watch, then track / untrack and close."""
        session_id = event.session_id
        keys = [ledger_session_key(self._agent_name, session_id), self._watchdog, self._live_due, self._live_rooms]
        action = action_for(event.to_status)
        args: list[str | int] = [session_id, action, repr(first_check_at), event.correlation_id, self._ttl_s]
        watched, flat = await self._apply(keys=keys, args=[*args, self._watched_prefix, self._sweep])
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        return ChangeView(record_of(session_id, fields), bool(watched))


class PortStatusChanges:
    """:class:`StatusChanges` through the ledger, the watch check and the live sessions (several round trips)."""

    def __init__(
        self, ledger: SessionLedger, is_watched: Callable[[str], Awaitable[bool]], live: LiveSessions | None
    ) -> None:
        self._ledger = ledger
        self._is_watched = is_watched
        self._live = live

    async def apply(self, event: SessionStatusChanged, first_check_at: float) -> ChangeView:
        """Read, check the watch, then track / untrack and close, each through its port."""
        record = await self._ledger.get(event.session_id)
        room = record.room_name if record is not None else ""
        watched = bool(room) and await self._is_watched(room)
        action = action_for(event.to_status)
        if action == TRACK and room and self._live is not None:
            await self._live.track(LiveSession(event.session_id, room, event.correlation_id), first_check_at)
        elif action == CLOSE:
            if self._live is not None:
                await self._live.untrack(event.session_id)
            await self._ledger.close(event.session_id)
        return ChangeView(record, watched)
