"""What a ``session.status_changed`` does to the dispatcher's own state, and what the handler needs to know of it.

Every status change reads the session's ledger record (its room) and whether the room is watched (lifecycle flow
events); a change to ``agent_joined`` / ``ready`` disarms the dispatch watchdog (the agent joined: the session store
read its ``agent.joined``, so the dispatcher needs no subscription of its own to that stream) and starts the room
sweep's watch, a terminal one stops it and closes the session in the ledger (never dispatched or watched again).
:class:`RedisStatusChanges` does all of that in one Lua script, one round trip per batch of changes: most
(``pending``, ``dispatched`` of an unwatched room) need nothing else. The same script takes each terminal session's
room lock for its clean-up, and one more round trip releases them all once the batch's clean-ups are done.
:class:`PortStatusChanges` does the same through the separate ports (fakes in tests).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from contracts.events import SessionStatusChanged
from contracts.keys import dispatch_lock_key, ledger_session_key, ledger_watchdog_key, watched_room_key
from contracts.status import TERMINAL
from services.dispatcher.dispatch_state import DispatchState
from services.dispatcher.ledger import record_of
from services.dispatcher.live_sessions import live_keys
from services.dispatcher.ports import RoomLocks, SessionLedger, SessionRecord
from services.dispatcher.room_locks import RedisRoomLocks
from services.dispatcher.room_sweep import LIVE_STATUSES, LiveSession, LiveSessions

_TERMINAL = frozenset(status.value for status in TERMINAL)
TRACK, CLOSE, NOTHING = "track", "close", ""


def action_for(to_status: str) -> str:
    """What the change does to the dispatcher's state: track a live session, close a terminal one, or nothing."""
    if to_status in LIVE_STATUSES:
        return TRACK
    return CLOSE if to_status in _TERMINAL else NOTHING


@dataclass(frozen=True)
class TakenLock:
    """A terminal session's room lock, taken by the batch's script with ``token``. As :class:`RoomLocks`, holding it
    keeps it (renewed while the clean-up runs); the batch releases it (:meth:`StatusChanges.release`)."""

    room_name: str
    token: str
    locks: RedisRoomLocks

    def hold(self, room_name: str) -> AbstractAsyncContextManager[None]:
        """Keep the taken lock (of this session's room) for the block."""
        return self.locks.keeping(self.room_name, self.token)


@dataclass(frozen=True)
class ChangeView:
    """The session's ledger record as it was before the change (None: never requested here) and whether its room
    is watched."""

    record: SessionRecord | None
    watched: bool
    room_lock: TakenLock | None = None  # a terminal session's room lock, already taken

    def locks(self, otherwise: RoomLocks) -> RoomLocks:
        """The room locks the session's clean-up takes: its lock already taken, else ``otherwise``."""
        return otherwise if self.room_lock is None else self.room_lock


class StatusChanges(Protocol):
    """Applies status changes to the ledger and the room sweep's live sessions."""

    async def apply_all(
        self, events: Sequence[SessionStatusChanged], first_check_at: Sequence[float]
    ) -> list[ChangeView]:
        """In order, for each change: track (first looked at ``first_check_at``), untrack and close as
        :func:`action_for` says; return each one's view."""
        ...

    async def release(self, views: Sequence[ChangeView]) -> None:
        """Release the room locks the changes of ``views`` took, once their clean-ups are done (or failed)."""
        ...


# KEYS: watchdog set, live due set, live rooms hash, then one ledger record per change.
# ARGV: ttl, watched-room key prefix, sweep (1/0), room-lock key prefix, room-lock ttl (ms), then per change: session
# id, action, first check at, correlation id, room-lock token. A terminal change takes its room's lock (SET NX PX, as
# RedisRoomLocks does) when it is free, so its clean-up needs no round trip for it. The watched-room and lock keys are
# derived from the record's room inside the script (not declared in KEYS): fine on one Redis server, which is how the
# services use it (a cluster would need the room in a hash tag).
_APPLY = f"""
local views = {{}}
for n = 4, #KEYS do
  local key, base = KEYS[n], 5 + (n - 4) * 5
  local sid, action, first_check, correlation = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4]
  local rec = redis.call('HGETALL', key)
  local room = ''
  for i = 1, #rec, 2 do if rec[i] == 'room' then room = rec[i + 1] end end
  local watched, locked = 0, 0
  if room ~= '' then watched = redis.call('EXISTS', ARGV[2] .. room) end
  if action == '{TRACK}' then
    -- the agent joined: the watchdog stops watching (a closed session stays closed; no record is made)
    if #rec > 0 and redis.call('HGET', key, 'state') ~= '{DispatchState.CLOSED.value}' then
      redis.call('HSET', key, 'state', '{DispatchState.JOINED.value}')
    end
    redis.call('ZREM', KEYS[1], sid)
    if ARGV[3] == '1' and room ~= '' then
      redis.call('HSET', KEYS[3], sid, cjson.encode({{room = room, correlation_id = correlation}}))
      redis.call('ZADD', KEYS[2], 'NX', first_check, sid)
    end
  elseif action == '{CLOSE}' then
    if ARGV[3] == '1' then
      redis.call('ZREM', KEYS[2], sid)
      redis.call('HDEL', KEYS[3], sid)
    end
    redis.call('HSET', key, 'state', '{DispatchState.CLOSED.value}')
    redis.call('ZREM', KEYS[1], sid)
    redis.call('EXPIRE', key, ARGV[1])
    if room ~= '' and redis.call('SET', ARGV[4] .. room, ARGV[base + 5], 'NX', 'PX', ARGV[5]) then locked = 1 end
  end
  views[#views + 1] = {{watched, rec, locked}}
end
return views
"""


class RedisStatusChanges:
    """:class:`StatusChanges` in one Lua script per batch of changes; ``sweep`` False: no room sweep to track for."""

    def __init__(self, redis: Redis, locks: RedisRoomLocks, agent_name: str, ttl_s: int, *, sweep: bool = True) -> None:
        self._locks = locks
        self._agent_name = agent_name
        self._watchdog = ledger_watchdog_key(agent_name)
        self._live_due, self._live_rooms = live_keys(agent_name)
        self._watched_prefix = watched_room_key("")
        self._lock_prefix = dispatch_lock_key("")
        self._ttl_s = ttl_s
        self._sweep = "1" if sweep else "0"
        self._apply = redis.register_script(_APPLY)

    async def apply(self, event: SessionStatusChanged, first_check_at: float) -> ChangeView:
        """One change in one round trip."""
        return (await self.apply_all([event], [first_check_at]))[0]

    async def apply_all(
        self, events: Sequence[SessionStatusChanged], first_check_at: Sequence[float]
    ) -> list[ChangeView]:
        """One round trip for all: read each record and its room's watch, then track / untrack and close."""
        if not events:
            return []
        keys = [self._watchdog, self._live_due, self._live_rooms]
        args: list[str | int] = [self._ttl_s, self._watched_prefix, self._sweep, self._lock_prefix]
        args.append(int(self._locks.ttl_s * 1000))
        actions = [action_for(event.to_status) for event in events]
        # a lock token only where a lock may be taken (terminal changes): most changes need none
        tokens = [uuid.uuid4().hex if action == CLOSE else "" for action in actions]
        for event, action, first, token in zip(events, actions, first_check_at, tokens, strict=True):
            keys.append(ledger_session_key(self._agent_name, event.session_id))
            args += [event.session_id, action, repr(first), event.correlation_id, token]
        views = await self._apply(keys=keys, args=args)
        found = []
        for event, token, (watched, flat, locked) in zip(events, tokens, views, strict=True):
            record = record_of(event.session_id, dict(zip(flat[::2], flat[1::2], strict=True)))
            lock = TakenLock(record.room_name, token, self._locks) if locked and record is not None else None
            found.append(ChangeView(record, bool(watched), lock))
        return found

    async def release(self, views: Sequence[ChangeView]) -> None:
        """One round trip for the batch's taken locks (not one per clean-up, as each releasing its own would)."""
        taken = [view.room_lock for view in views if view.room_lock is not None]
        await self._locks.release_all([(lock.room_name, lock.token) for lock in taken])


class PortStatusChanges:
    """:class:`StatusChanges` through the ledger, the watch check and the live sessions (several round trips)."""

    def __init__(
        self, ledger: SessionLedger, is_watched: Callable[[str], Awaitable[bool]], live: LiveSessions | None
    ) -> None:
        self._ledger = ledger
        self._is_watched = is_watched
        self._live = live

    async def apply_all(
        self, events: Sequence[SessionStatusChanged], first_check_at: Sequence[float]
    ) -> list[ChangeView]:
        """Each change in turn (several round trips each)."""
        return [await self.apply(event, first) for event, first in zip(events, first_check_at, strict=True)]

    async def apply(self, event: SessionStatusChanged, first_check_at: float) -> ChangeView:
        """Read, check the watch, then track / untrack and close, each through its port."""
        record = await self._ledger.get(event.session_id)
        room = record.room_name if record is not None else ""
        watched = bool(room) and await self._is_watched(room)
        action = action_for(event.to_status)
        if action == TRACK:
            if record is not None:
                await self._ledger.mark_joined(event.session_id)
            if room and self._live is not None:
                await self._live.track(LiveSession(event.session_id, room, event.correlation_id), first_check_at)
        elif action == CLOSE:
            if self._live is not None:
                await self._live.untrack(event.session_id)
            await self._ledger.close(event.session_id)
        return ChangeView(record, watched)

    async def release(self, views: Sequence[ChangeView]) -> None:
        """Nothing: these changes take no lock (a clean-up takes its own)."""
