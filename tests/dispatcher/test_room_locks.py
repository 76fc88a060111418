"""Room locks on real Redis: held for the block, renewed meanwhile, and released however the renewal was stopped."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.lock import Lock

from contracts.keys import dispatch_lock_key
from services.dispatcher.room_locks import RedisRoomLocks

TTL_S = 0.3  # renewed every 0.1 s


class SwallowingLock(Lock):
    """A lock whose renewal swallows the cancellation that arrives during it, as Python 3.11's ``asyncio.wait_for``
    does (redis-py sends every command through it) when the cancel lands just as the command completes."""

    renewing: asyncio.Event

    async def do_reacquire(self) -> Any:
        if not self.renewing.is_set():  # the first renewal only
            self.renewing.set()
            # the window, which only a cancellation ends; swallowed, the task goes on as if never cancelled
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
        return await super().do_reacquire()


class SwallowingRedis(Redis):
    """The real client, handing out :class:`SwallowingLock` s."""

    renewing: asyncio.Event

    def lock(self, *args: Any, **kwargs: Any) -> Any:
        lock = super().lock(*args, lock_class=SwallowingLock, **kwargs)
        lock.renewing = self.renewing
        return lock


async def test_lock_is_renewed_while_held_and_released_after(redis: Redis) -> None:
    room = f"room-{uuid.uuid4().hex}"
    locks = RedisRoomLocks(redis, ttl_s=TTL_S, wait_s=1.0)
    async with asyncio.timeout(5):
        async with locks.hold(room):
            await asyncio.sleep(TTL_S * 3)  # outlives the TTL: only the renewals keep it
            assert await redis.exists(dispatch_lock_key(room))
    assert not await redis.exists(dispatch_lock_key(room))


async def test_block_ends_even_when_the_renewal_swallowed_its_cancellation(redis: Redis) -> None:
    """The burst's stall: a handler waited forever for its room lock's renewal task, which had lost its
    cancellation inside the Redis client and kept renewing the lock every ``ttl / 3``."""
    swallowing = SwallowingRedis(connection_pool=redis.connection_pool)
    swallowing.renewing = asyncio.Event()
    room = f"room-{uuid.uuid4().hex}"
    locks = RedisRoomLocks(swallowing, ttl_s=TTL_S, wait_s=1.0)
    async with asyncio.timeout(5) as deadline:
        async with locks.hold(room):
            await swallowing.renewing.wait()  # the block ends (cancelling the renewal) in the window
    assert not deadline.expired(), "leaving the block waited for a renewal task that never ended"
    assert not await redis.exists(dispatch_lock_key(room))
    renewals = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "RedisRoomLocks._keep_alive"]
    assert renewals == []


async def test_a_hold_shorter_than_a_renewal_period_starts_no_renewal_task(redis: Redis) -> None:
    room = f"room-{uuid.uuid4().hex}"
    locks = RedisRoomLocks(redis, ttl_s=30.0, wait_s=1.0)  # the first renewal would be due after 10 s
    async with locks.hold(room):
        renewals = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "RedisRoomLocks._keep_alive"]
        assert renewals == []
        assert await redis.exists(dispatch_lock_key(room))
    assert not await redis.exists(dispatch_lock_key(room))
