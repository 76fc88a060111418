"""The PostgreSQL connection pool every service that owns or reads tables builds the same way."""

from __future__ import annotations

import time
import weakref
from typing import Any, Protocol

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool


class PoolSettings(Protocol):
    """Where the database is and how the pool is sized."""

    @property
    def database_url(self) -> str: ...
    @property
    def db_pool_min(self) -> int: ...
    @property
    def db_pool_max(self) -> int: ...
    @property
    def db_pool_timeout_s(self) -> float: ...


class CheckWhenIdle:
    """The pool's check on checkout, skipped for a connection handed out less than ``idle_s`` ago (it just worked).

    A consumer takes a connection per batch, often many times a second: the check's round trip is a good part of a
    small batch's cost. What it guards against (a connection left over from an outage or a server restart) needs the
    server gone for longer than ``idle_s``; a shorter blip costs a batch a transient failure, retried. The clock
    starts when the connection is handed out, not when it comes back: no reset callback, which would send every
    return through the pool's worker task (a task switch per batch), and a connection kept longer is checked sooner.
    """

    def __init__(self, idle_s: float) -> None:
        self._idle_s = idle_s
        self._handed_out: weakref.WeakKeyDictionary[AsyncConnection[Any], float] = weakref.WeakKeyDictionary()

    async def check(self, conn: AsyncConnection[Any]) -> None:
        """Check ``conn`` unless it was handed out within ``idle_s``; it is handed out now (if this does not raise)."""
        now = time.monotonic()
        handed_out = self._handed_out.get(conn)
        if handed_out is None or now - handed_out >= self._idle_s:
            await AsyncConnectionPool.check_connection(conn)
        self._handed_out[conn] = now


def connection_pool(settings: PoolSettings, *, skip_check_within_s: float = 0.0) -> AsyncConnectionPool:
    """A pool (not yet open) whose connections are checked on checkout: one left over from an outage is replaced.

    ``skip_check_within_s`` > 0 skips the check of a connection returned that recently (see :class:`CheckWhenIdle`).
    """
    check: Any = AsyncConnectionPool.check_connection
    if skip_check_within_s > 0:
        check = CheckWhenIdle(skip_check_within_s).check
    return AsyncConnectionPool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        timeout=settings.db_pool_timeout_s,
        open=False,
        check=check,
    )
