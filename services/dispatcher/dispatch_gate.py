"""The steps around a session's first dispatch that touch shared state: take the room's lock, remember the session
(counting the try), and on the way out arm the watchdog and release the lock.

:class:`RedisDispatchGate` takes the lock and remembers in one Lua script, and arms and releases in another: two round
trips instead of four; an announcement asked for inside (the ``session.dispatched``) is XADDed in the second round
trip. The lock is the same key and token protocol as :class:`~services.dispatcher.room_locks.RedisRoomLocks`
(redis-py's Lock), renewed the same way while held, so the watchdog and clean-up exclude it as before.
:class:`LockedLedgerGate` does the same through the separate ports (fakes in tests).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import LockError, NoScriptError

from contracts.events import Event
from contracts.keys import dispatch_lock_key, ledger_session_key, ledger_watchdog_key
from services.dispatcher.dispatch_state import DispatchState
from services.dispatcher.ledger import REMEMBER_LUA, WATCH_LUA
from services.dispatcher.ports import RoomLocks, SessionLedger
from services.dispatcher.room_locks import RedisRoomLocks

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SessionSeen:
    """What a session request carries into the ledger."""

    session_id: str
    room_name: str
    metadata: str
    correlation_id: str
    ready_deadline: float


@dataclass
class Entry:
    """Inside the gate: the session's state and earlier tries; :meth:`arm` asks for the watch on the way out."""

    state: DispatchState
    tries_before: int
    watch: tuple[str, int, float] | None = None  # dispatch id, attempt, deadline
    announcement: Event | None = None
    armed: bool = field(default=False)  # set on the way out
    announced: bool = field(default=False)  # set on the way out: the announcement was published

    def arm(self, dispatch_id: str, attempt: int, deadline: float) -> None:
        """Watch the session (if still ``requested``) until ``deadline``, as the lock is released."""
        self.watch = (dispatch_id, attempt, deadline)

    def announce(self, event: Event) -> None:
        """Publish ``event`` as the gate is left (if the block ends without error and the gate can; else
        :attr:`announced` stays False and the caller publishes it)."""
        self.announcement = event


class DispatchGate(Protocol):
    """The room's lock around remembering a session and arming its watch."""

    def enter(self, seen: SessionSeen) -> AbstractAsyncContextManager[Entry]:
        """Hold the room's lock for the block (raises ``LockError`` when the wait runs out), the session remembered."""
        ...


class LockedLedgerGate:
    """:class:`DispatchGate` through :class:`RoomLocks` and :class:`SessionLedger`."""

    def __init__(self, locks: RoomLocks, ledger: SessionLedger) -> None:
        self._locks = locks
        self._ledger = ledger

    @asynccontextmanager
    async def enter(self, seen: SessionSeen) -> AsyncIterator[Entry]:
        """Lock, remember; on the way out arm (if asked) before the lock goes."""
        async with self._locks.hold(seen.room_name):
            state, tries = await self._ledger.remember_try(
                seen.session_id, seen.room_name, seen.metadata, seen.correlation_id, seen.ready_deadline
            )
            entry = Entry(state, tries)
            yield entry
            if entry.watch is not None:
                entry.armed = await self._ledger.arm(seen.session_id, *entry.watch)


# KEYS: record, lock. ARGV: REMEMBER_LUA's six, then lock token, lock ttl (ms).
_ENTER = (
    "if not redis.call('SET', KEYS[2], ARGV[7], 'NX', 'PX', ARGV[8]) then return {0, '', 0} end\n"
    + REMEMBER_LUA
    + "return {1, state, tries}"
)
# KEYS: record, watch set, lock. ARGV: WATCH_LUA's six, then lock token, arm ('1').
_LEAVE = (
    "local armed = 0\n"
    + "if ARGV[8] == '1' then\n"
    + WATCH_LUA.replace("local armed = 0\n", "")
    + "end\n"
    + "local released = 0\n"
    + "if redis.call('GET', KEYS[3]) == ARGV[7] then released = redis.call('DEL', KEYS[3]) end\n"
    + "return {armed, released}"
)


PublishIn = Callable[[Pipeline, Event], Awaitable[None]]
"""Queues an event's XADD in a pipeline (:meth:`services.runtime.publishing.BrokerPublisher.publish_in`)."""


class RedisDispatchGate:
    """:class:`DispatchGate` in two Lua scripts; waits for a busy room like redis-py's Lock (every 0.1 s). With
    ``publish_in``, an announcement goes in the same round trip as the second script (a pipeline)."""

    def __init__(
        self, redis: Redis, locks: RedisRoomLocks, agent_name: str, ttl_s: int, publish_in: PublishIn | None = None
    ) -> None:
        self._redis = redis
        self._publish_in = publish_in
        self._locks = locks
        self._agent_name = agent_name
        self._watchdog = ledger_watchdog_key(agent_name)
        self._ttl_s = ttl_s
        self._enter = redis.register_script(_ENTER)
        self._leave = redis.register_script(_LEAVE)

    @asynccontextmanager
    async def enter(self, seen: SessionSeen) -> AsyncIterator[Entry]:
        """Lock and remember in one round trip; arm and release in one on the way out."""
        record, lock_key = ledger_session_key(self._agent_name, seen.session_id), dispatch_lock_key(seen.room_name)
        token = uuid.uuid4().hex
        args: list[str | int] = [seen.room_name, seen.metadata, seen.correlation_id, self._ttl_s]
        args += [repr(seen.ready_deadline), "1", token, int(self._locks.ttl_s * 1000)]
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._locks.wait_s
        while True:
            taken, state, tries = await self._enter(keys=[record, lock_key], args=args)
            if taken:
                break
            if loop.time() + 0.1 > give_up_at:
                raise LockError(f"room {seen.room_name} still locked after {self._locks.wait_s} s")
            await asyncio.sleep(0.1)  # a busy room: another delivery or replica is working on it
        lock = self._locks.lock_for(seen.room_name)
        lock.local.token = token.encode()  # the renewal's proof of ownership
        entry = Entry(DispatchState(state.decode() if isinstance(state, bytes) else state), int(tries))
        watch: tuple[str, int, float] | None = None
        announcement: Event | None = None
        try:
            async with self._locks.kept(lock, seen.room_name):
                yield entry
            watch, announcement = entry.watch, entry.announcement
        finally:
            dispatch_id, attempt, deadline = watch or ("", 0, 0.0)
            leave: list[str | int] = [DispatchState.REQUESTED.value, seen.session_id, dispatch_id, attempt]
            leave += [repr(deadline), self._ttl_s, token, "1" if watch else "0"]
            keys = [record, self._watchdog, lock_key]
            if announcement is not None and self._publish_in is not None:
                armed, released = await self._leave_announcing(self._publish_in, keys, leave, announcement)
                entry.announced = True
            else:
                armed, released = await self._leave(keys=keys, args=leave)
            entry.armed = bool(armed)
            if not released:
                log.warning("room_lock_lost", room=seen.room_name)

    async def _leave_announcing(
        self, publish_in: PublishIn, keys: list[str], args: list[str | int], event: Event
    ) -> list[int]:
        """The leave script and the event's XADD in one pipeline (one round trip); the script by its hash, and once
        more on its own (loading it) if Redis does not know it yet (a first call, a restarted Redis)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.evalsha(self._leave.sha, len(keys), *keys, *args)
            await publish_in(pipe, event)
            left, *published = await pipe.execute(raise_on_error=False)
        if isinstance(left, NoScriptError):
            left = await self._leave(keys=keys, args=args)
        elif isinstance(left, Exception):
            raise left
        for failed in (result for result in published if isinstance(result, Exception)):
            raise failed  # not published: the request is handled again (its redelivery lists the dispatch made)
        return [int(value) for value in left]
