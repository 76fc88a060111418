"""Per-room locks in Redis (redis-py's Lock: SET NX PX with a token, released only by its holder).

The lock is short-lived and kept alive by its holder: a dispatcher killed with -9 blocks its room for
at most ``ttl_s``, while a live holder working through slow LiveKit retries never loses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import structlog
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

from contracts.keys import dispatch_lock_key

log = structlog.get_logger(__name__)

# KEYS: the lock keys; ARGV: their tokens. Deletes each key still holding its token (redis-py's release, for many).
_RELEASE_ALL = """
local released = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i] then released = released + redis.call('DEL', KEYS[i]) end
end
return released
"""


class RedisRoomLocks:
    """One lock per room, renewed every ``ttl_s / 3`` while held; a waiter gives up after ``wait_s``."""

    def __init__(self, redis: Redis, ttl_s: float = 10.0, wait_s: float = 20.0) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._wait_s = wait_s
        self._release = redis.register_script(_RELEASE_ALL)

    def lock_for(self, room_name: str) -> Lock:
        """The room's lock object (not yet acquired), with this holder's TTL and wait."""
        return self._redis.lock(dispatch_lock_key(room_name), timeout=self._ttl_s, blocking_timeout=self._wait_s)

    @property
    def ttl_s(self) -> float:
        """How long a lock lives without renewal."""
        return self._ttl_s

    @property
    def wait_s(self) -> float:
        """How long a waiter waits for a busy room."""
        return self._wait_s

    @asynccontextmanager
    async def hold(self, room_name: str) -> AsyncIterator[None]:
        """Hold the room's lock for the block; raises ``redis.exceptions.LockError`` when the wait runs out."""
        lock = self.lock_for(room_name)
        async with lock, self.kept(lock, room_name):
            yield

    def keeping(self, room_name: str, token: str) -> AbstractAsyncContextManager[None]:
        """The room's lock, taken already with ``token`` (SET NX PX elsewhere): kept while the block runs; its release
        is the taker's (:meth:`release_all`, one round trip for many)."""
        lock = self.lock_for(room_name)
        lock.local.token = token.encode()  # the renewal's proof of ownership
        return self.kept(lock, room_name)

    async def release_all(self, taken: Sequence[tuple[str, str]]) -> int:
        """Release the rooms' locks taken with these (room, token) pairs, each only if still its taker's, in one round
        trip; how many were released. One that lapsed (its renewal failed, which logs) or went to another holder is
        left alone, as redis-py's release does, without its error: nothing of the taker's is left to release."""
        if not taken:
            return 0
        keys = [dispatch_lock_key(room) for room, _ in taken]
        return int(await self._release(keys=keys, args=[token for _, token in taken]))

    @asynccontextmanager
    async def kept(self, lock: Lock, room_name: str) -> AsyncIterator[None]:
        """Renew the acquired ``lock`` every ``ttl_s / 3`` while the block runs (its release is the caller's)."""
        released = asyncio.Event()
        keeper: list[asyncio.Task[None]] = []

        def renew() -> None:  # a timer, not a task: most holds end before the first renewal is due
            if not released.is_set():
                keeper.append(asyncio.create_task(self._keep_alive(lock, room_name, released)))

        timer = asyncio.get_running_loop().call_later(self._ttl_s / 3, renew)
        try:
            yield
        finally:
            released.set()
            timer.cancel()
            if keeper:
                await self._stop(keeper[0], room_name)

    async def _stop(self, keeper: asyncio.Task[None], room_name: str) -> None:
        keeper.cancel()
        # Bounded, and unlike ``suppress(CancelledError): await keeper`` it never swallows a cancellation
        # aimed at this task (the delivery's handler deadline): asyncio.wait only waits.
        await asyncio.wait({keeper}, timeout=self._ttl_s)
        if not keeper.done():
            log.warning("room_lock_renewal_still_running", room=room_name, waited_s=self._ttl_s)
        elif not keeper.cancelled():
            keeper.result()  # a renewal's unexpected error surfaces here, as before

    async def _keep_alive(self, lock: Lock, room_name: str, released: asyncio.Event) -> None:
        # Started once the first renewal is due. ``released`` ends the renewals when the cancellation does not:
        # Python 3.11's asyncio.wait_for, which redis-py sends every command through, drops a cancellation that
        # arrives just as the command completes (CPython gh-86296). Such a renewal used to go on forever, and
        # ``hold`` waited for it forever.
        while not released.is_set():
            try:
                await lock.reacquire()
            except (LockError, RedisError) as exc:  # the block goes on; the lock may lapse, log it
                log.warning("room_lock_renewal_failed", room=room_name, error=str(exc))
                return
            if released.is_set():
                return
            await asyncio.sleep(self._ttl_s / 3)
