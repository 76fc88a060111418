"""Publishable keys (``pk_``): what a browser may hold. They start sessions of their listed flows, from their
allowed origins, at a bounded rate per client address; nothing else (:class:`services.api.auth.ApiKey`)."""

from __future__ import annotations

import math

from redis.asyncio import Redis

from contracts.keys import PUBLISHABLE_RATE_WINDOW_S, publishable_rate_key
from services.api.auth import ApiKey
from services.api.scopes import AccessDeniedError

# A fixed window that starts at an address's first request: INCR, and the expiry set with the first hit, at once
# (a key can never be left without its expiry, so every counter goes away).
_COUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}
"""


class RateLimitedError(Exception):
    """Too many session requests from one address with one publishable key: answered with 429 and Retry-After."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PublishableGate:
    """Checks a publishable key's session request: flow, origin, then the rate of its client address."""

    def __init__(self, redis: Redis, rate_per_window: int) -> None:
        """``rate_per_window``: session requests per address and key in PUBLISHABLE_RATE_WINDOW_S."""
        self._rate = rate_per_window
        self._count = redis.register_script(_COUNT)

    async def admit(self, key: ApiKey, flow_id: str, origin: str | None, address: str) -> None:
        """Return when ``key`` may start a session of ``flow_id`` now; AccessDeniedError or RateLimitedError."""
        if origin is None:
            raise AccessDeniedError(
                "a publishable key is accepted only from a browser page: the request has no Origin header "
                "(from a backend, use a secret API key)"
            )
        if origin not in key.origins:
            raise AccessDeniedError(
                f"this publishable key is not allowed from origin {origin!r}; "
                "create one with --origin for it (python -m services.api create-key --publishable ...)"
            )
        if flow_id not in key.flow_ids:
            raise AccessDeniedError(
                f"this publishable key cannot start sessions of flow {flow_id!r}; create one with --flow {flow_id}"
            )
        window_ms = PUBLISHABLE_RATE_WINDOW_S * 1000
        count, ttl_ms = await self._count(keys=[publishable_rate_key(key.key_id, address)], args=[window_ms])
        if int(count) > self._rate:
            retry_after = max(1, math.ceil(int(ttl_ms) / 1000))
            raise RateLimitedError(
                f"too many sessions started from this address with this publishable key "
                f"(at most {self._rate} per {PUBLISHABLE_RATE_WINDOW_S} s); retry in {retry_after} s",
                retry_after,
            )
