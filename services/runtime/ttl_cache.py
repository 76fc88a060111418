"""A small in-process cache of lookups whose answers expire; during an outage it answers from expired entries.

Used by the API's hot path (flows, API keys) and the dispatcher (room watchers). A value is reused for ``ttl_s``;
then the next request looks it up again, one lookup per key at a time. Only when that lookup fails with an error
``is_outage`` accepts (the database is unreachable) is the expired value used instead, for at most ``stale_s`` past
its expiry; meanwhile requests answer at once and one lookup per key and TTL is retried in the background, so an
outage costs one slow request per key, not one per TTL.
A lookup that answers None (not found, revoked) drops the entry at once: a working database is never overridden.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

log = structlog.get_logger(__name__)


def _retrieve(done: asyncio.Future[Any]) -> None:
    """Mark a failed lookup's error as seen (its own caller got it; others may not have waited)."""
    if not done.cancelled():
        done.exception()


def never(_: BaseException) -> bool:
    """The default ``is_outage``: no error allows an expired value."""
    return False


@dataclass
class _Entry(Generic[V]):
    value: V
    recheck_at: float  # reuse the value without a lookup until then
    stale_until: float  # after this, not even an outage allows the value
    stale: bool = False  # the last lookup failed with an outage: the value is being served past its TTL


class TtlCache(Generic[K, V]):
    """Keeps up to ``max_entries`` lookups for ``ttl_s`` seconds each; the oldest entries go first when full."""

    def __init__(
        self,
        ttl_s: float,
        *,
        stale_s: float = 0.0,
        is_outage: Callable[[BaseException], bool] = never,
        name: str = "cache",
        log_key: Callable[[K], object] = str,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_s
        self._stale_s = stale_s
        self._is_outage = is_outage
        self._name = name
        self._log_key = log_key
        self._max = max_entries
        self._clock = clock
        self._entries: dict[K, _Entry[V]] = {}
        self._retrying: set[K] = set()  # stale keys whose lookup is being retried in the background
        self._inflight: dict[K, asyncio.Future[V | None]] = {}  # lookups running now, awaited by the same key's others
        self._tasks: set[asyncio.Task[None]] = set()  # the retries (referenced until done)

    async def get(self, key: K, lookup: Callable[[], Awaitable[V | None]]) -> V | None:
        """The value of ``key``: reused while fresh, else looked up (None: there is none; nothing is kept)."""
        entry = self._entries.get(key)
        if entry is not None:
            now = self._clock()
            if now < entry.recheck_at:
                return entry.value
            if entry.stale and now < entry.stale_until:
                # The last lookup found the database unreachable: answer now, retry it in the background.
                entry.recheck_at = min(now + self._ttl, entry.stale_until)
                if key not in self._retrying:
                    self._retry_in_background(key, entry, lookup)
                return entry.value
        inflight = self._inflight.get(key)
        if inflight is not None:  # one lookup per key at a time: a burst must not take every database connection
            if entry is not None:
                return entry.value  # expired a moment ago, being looked up right now
            return await asyncio.shield(inflight)
        done: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieve)
        self._inflight[key] = done
        try:
            value = await self._refresh(key, entry, lookup)
        except BaseException as exc:
            done.set_exception(exc)
            raise
        finally:
            self._inflight.pop(key, None)
        done.set_result(value)
        return value

    def peek(self, key: K) -> V | None:
        """The value of ``key`` while fresh, else None; never looks it up."""
        entry = self._entries.get(key)
        if entry is not None and self._clock() < entry.recheck_at:
            return entry.value
        return None

    def holds(self, key: K) -> bool:
        """True while ``key`` has a value here, fresh or due for a recheck (a lookup that found none keeps nothing)."""
        return key in self._entries

    def discard(self, key: K) -> None:
        """Forget ``key`` (its next request looks it up)."""
        self._entries.pop(key, None)

    async def _refresh(self, key: K, entry: _Entry[V] | None, lookup: Callable[[], Awaitable[V | None]]) -> V | None:
        try:
            value = await lookup()
        except Exception as exc:
            if entry is None or not self._outage_allows(key, entry, exc):
                raise
            return entry.value
        self._store(key, value)
        return value

    def _retry_in_background(self, key: K, entry: _Entry[V], lookup: Callable[[], Awaitable[V | None]]) -> None:
        async def retry() -> None:
            try:
                await self._refresh(key, entry, lookup)
            except Exception as exc:  # noqa: BLE001 -- not an outage: the entry is dropped, the next request sees it
                log.warning("cache_refresh_failed", cache=self._name, key=self._log_key(key), error=repr(exc)[:500])
            finally:
                self._retrying.discard(key)

        self._retrying.add(key)
        task = asyncio.create_task(retry())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _outage_allows(self, key: K, entry: _Entry[V], exc: Exception) -> bool:
        """True (and the entry marked stale) when ``entry`` may answer although its lookup failed with ``exc``."""
        if self._entries.get(key) is not entry:  # replaced or dropped meanwhile by a lookup that worked
            return False
        now = self._clock()
        if not self._is_outage(exc) or now >= entry.stale_until:
            self._entries.pop(key, None)
            if entry.stale and now >= entry.stale_until:
                log.error("cache_stale_limit_reached", cache=self._name, key=self._log_key(key), error=repr(exc)[:500])
            return False
        if not entry.stale:  # once per key and outage: the requests that follow would only repeat it
            log.warning(
                "cache_serving_stale",
                cache=self._name,
                key=self._log_key(key),
                error=f"{type(exc).__name__}: {exc}"[:500],
                for_at_most_s=round(entry.stale_until - now, 1),
            )
        entry.stale = True
        entry.recheck_at = min(now + self._ttl, entry.stale_until)
        return True

    def _store(self, key: K, value: V | None) -> None:
        old = self._entries.pop(key, None)
        if old is not None and old.stale:
            log.info("cache_lookup_recovered", cache=self._name, key=self._log_key(key))
        if value is None or self._ttl <= 0:
            return
        if len(self._entries) >= self._max:
            self._entries.pop(next(iter(self._entries)))
        now = self._clock()
        self._entries[key] = _Entry(value, now + self._ttl, now + self._ttl + self._stale_s)
