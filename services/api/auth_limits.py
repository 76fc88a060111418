"""Invalid API keys must not reach PostgreSQL one by one: each cost a lookup (a flood was accepted at ~400/s).

Two in-process checks, both before the database: an unknown key is remembered briefly (a fleet of clients still
sending a revoked key costs one lookup per ``miss_ttl_s``), and a client address that sent ``limit`` invalid keys in
a window gets 429 with Retry-After for the rest of it. Keys cached as valid never pass through here, so a valid key
keeps working from an address that is being limited (one not looked up yet waits for the window like any other).
Behind a proxy, trust it (uvicorn's FORWARDED_ALLOW_IPS) or every client shares the proxy's address.

Random keys from many addresses pass both checks, so the lookups of keys this process has not seen valid lately
also share one budget per process (a token bucket, ``lookups_per_s``): past it such a request gets 429 with
Retry-After 1 s, while keys seen valid (even if their cache entry is due for a recheck) are still looked up.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

import structlog

from services.api.publishable_keys import RateLimitedError

log = structlog.get_logger(__name__)

V = TypeVar("V")


class TooManyInvalidKeysError(RateLimitedError):
    """The client address sent too many invalid API keys in this window: answered with 429 and Retry-After."""


class LookupBudgetSpentError(RateLimitedError):
    """This process has looked up as many never-seen keys as it may this second: answered with 429 and Retry-After."""


class FailedAuthGuard:
    """Remembers unknown key hashes for ``miss_ttl_s``, counts invalid keys per address in fixed windows and bounds
    the lookups of keys not seen valid lately (``lookups_per_s``; 0: unbounded)."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        miss_ttl_s: float,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        *,
        lookups_per_s: float = 0.0,
    ) -> None:
        self._limit = limit
        self._window_s = window_s
        self._miss_ttl_s = miss_ttl_s
        self._max = max_entries  # memory stays bounded whatever the number of addresses and keys
        self._clock = clock
        self._misses: dict[str, float] = {}  # key hash -> when it may be looked up again
        self._failures: dict[str, int] = {}  # address -> invalid keys in this window
        self._window_ends = clock() + window_s
        self._lookup_rate = lookups_per_s
        self._lookup_tokens = lookups_per_s  # a bucket of one second's lookups, full at start
        self._lookup_refilled = clock()

    def admit(self, address: str) -> None:
        """Charge ``address`` one lookup, refunded by :meth:`passed` when its key is valid (so concurrent requests
        cannot all pass before the first failure is counted); TooManyInvalidKeysError (429) when over its limit."""
        self._roll()
        count = self._failures.get(address, 0)
        if count >= self._limit:
            retry_after = max(1, math.ceil(self._window_ends - self._clock()))
            raise TooManyInvalidKeysError(
                f"too many invalid API keys from this address (at most {self._limit} per {self._window_s:g} s); "
                f"check the key you send and retry in {retry_after} s",
                retry_after,
            )
        self._charge(address, count)

    def passed(self, address: str) -> None:
        """The key charged by :meth:`admit` was valid (or its lookup could not tell): give the charge back."""
        count = self._failures.get(address, 0) - 1
        if count > 0:
            self._failures[address] = count
        else:
            self._failures.pop(address, None)

    def spend_lookup(self, address: str) -> None:
        """Take one lookup of a key not seen valid lately from the process's budget; LookupBudgetSpentError (429)
        when it is spent (the charge :meth:`admit` made is given back: the key may well be valid)."""
        if self._lookup_rate <= 0:
            return
        now = self._clock()
        elapsed = now - self._lookup_refilled
        self._lookup_refilled = now
        self._lookup_tokens = min(self._lookup_rate, self._lookup_tokens + elapsed * self._lookup_rate)
        if self._lookup_tokens >= 1:
            self._lookup_tokens -= 1
            return
        self.passed(address)
        log.warning("auth_lookups_limited", lookups_per_s=self._lookup_rate)
        raise LookupBudgetSpentError(
            f"too many API keys this server has not seen lately are being checked (at most {self._lookup_rate:g} "
            "per second); retry in 1 s",
            1,
        )

    def known_unknown(self, key_hash: str) -> bool:
        """True while ``key_hash`` was looked up and not found less than ``miss_ttl_s`` ago."""
        until = self._misses.get(key_hash)
        if until is None:
            return False
        if self._clock() < until:
            return True
        del self._misses[key_hash]
        return False

    def remember_unknown(self, key_hash: str) -> None:
        """The lookup of ``key_hash`` found no key: answer it without one for ``miss_ttl_s``."""
        if self._miss_ttl_s > 0:
            _make_room(self._misses, self._max)
            self._misses[key_hash] = self._clock() + self._miss_ttl_s

    def _charge(self, address: str, count: int) -> None:
        if count == 0:
            _make_room(self._failures, self._max)
        self._failures[address] = count + 1
        if count + 1 == self._limit:  # once per address and window: the requests that follow are only counted
            log.warning("auth_failures_limited", address=address, limit=self._limit, window_s=self._window_s)

    def tracked(self) -> tuple[int, int]:
        """How many unknown keys and addresses are remembered now."""
        return len(self._misses), len(self._failures)

    def _roll(self) -> None:
        now = self._clock()
        if now >= self._window_ends:  # one window for every address: the counts go away together, no sweep needed
            self._failures.clear()
            self._window_ends = now + self._window_s


def _make_room(entries: dict[str, V], max_entries: int) -> None:
    if len(entries) >= max_entries:
        entries.pop(next(iter(entries)))  # the oldest: dicts keep insertion order
