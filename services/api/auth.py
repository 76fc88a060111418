"""API keys: how they look, how they are stored (SHA-256 of the key) and how a request's key finds its org."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from services.api.scopes import AccessDeniedError, missing_scope
from services.runtime.ttl_cache import TtlCache

if TYPE_CHECKING:  # auth_limits reuses the 429 of publishable_keys, which imports this module
    from services.api.auth_limits import FailedAuthGuard

KEY_PREFIX = "ar_"
PUBLISHABLE_PREFIX = "pk_"
MIN_KEY_LENGTH = 16
MAX_KEY_LENGTH = 200


class AuthError(Exception):
    """The request carries no API key, or one that is not valid: answered with 401."""


@dataclass(frozen=True)
class ApiKey:
    """A live key as the API uses it: whose it is, and what it may do."""

    key_id: str
    org_id: str
    publishable: bool = False
    scopes: frozenset[str] = frozenset()  # secret keys only
    flow_ids: frozenset[str] = frozenset()  # publishable keys only: the flows it may start sessions of
    origins: frozenset[str] = frozenset()  # publishable keys only: the exact Origin values it is accepted from

    def require(self, scope: str) -> str:
        """The key's organisation if it is a secret key with ``scope``; AccessDeniedError (403) otherwise."""
        if self.publishable:
            raise publishable_only_starts_sessions()
        if scope not in self.scopes:
            raise missing_scope(scope)
        return self.org_id


def publishable_only_starts_sessions() -> AccessDeniedError:
    """The 403 for a publishable key on any route but session creation."""
    return AccessDeniedError(
        "publishable keys (pk_) can only start sessions (POST /api/flows/{flowId}/sessions); "
        "call this route from your backend with a secret API key"
    )


class KeyLookup(Protocol):
    """Finds a live key by its hash."""

    async def key_for_hash(self, key_hash: str) -> ApiKey | None:
        """The live (not revoked) key with this hash, or None."""
        ...


def new_api_key(publishable: bool = False) -> str:
    """A fresh key: its prefix (``pk_`` when publishable) and 32 random bytes, URL-safe."""
    return (PUBLISHABLE_PREFIX if publishable else KEY_PREFIX) + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of a key; keys are high-entropy, so a plain SHA-256 is enough (no slow KDF)."""
    return hashlib.sha256(key.encode()).hexdigest()


def check_key_format(key: str) -> None:
    """Raise ValueError when ``key`` cannot be an API key (too short, too long, not printable ASCII)."""
    if not MIN_KEY_LENGTH <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable() or " " in key:
        raise ValueError(f"an API key is {MIN_KEY_LENGTH}-{MAX_KEY_LENGTH} printable ASCII characters, no spaces")


def bearer_key(authorization: str | None) -> str:
    """The key of an ``Authorization: Bearer <key>`` header; AuthError when absent or malformed."""
    if not authorization:
        raise AuthError("missing API key: send 'Authorization: Bearer <api key>'")
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthError("malformed Authorization header: expected 'Bearer <api key>'")
    return key.strip()


class Authenticator:
    """Resolves API keys, remembering recent answers briefly (revocation takes up to the TTL); with a ``guard``,
    invalid keys are answered without the database once known, and limited per client address."""

    def __init__(self, lookup: KeyLookup, cache: TtlCache[str, ApiKey], guard: FailedAuthGuard | None = None) -> None:
        """``cache`` maps key hashes to keys; its policy (TTL, use during an outage) is the caller's."""
        self._lookup = lookup
        self._cache = cache
        self._guard = guard

    async def key_for(self, credential: str, address: str = "unknown") -> ApiKey:
        """The live key ``credential`` is (the value of a Bearer header); AuthError when it is unknown,
        TooManyInvalidKeysError (429) when ``address`` (the client's) sent too many invalid keys lately."""
        digest = hash_key(credential)
        guard = self._guard
        if guard is None:
            return _known(await self._cache.get(digest, lambda: self._lookup.key_for_hash(digest)))
        cached = self._cache.peek(digest)
        if cached is not None:  # a valid key is never limited by what others sent from its address
            return cached
        guard.admit(address)  # charged now, refunded below when the key is valid
        try:
            check_key_format(credential)
        except ValueError as exc:  # no key looks like this: no lookup needed
            raise AuthError(f"invalid API key: {exc}") from exc
        if guard.known_unknown(digest):
            raise AuthError("invalid API key")
        if not self._cache.holds(digest):  # never seen valid lately: its lookup comes out of the process's budget
            guard.spend_lookup(address)
        try:
            key = await self._cache.get(digest, lambda: self._lookup.key_for_hash(digest))
        except Exception:
            guard.passed(address)  # the database failed, not the client's key
            raise
        if key is None:
            guard.remember_unknown(digest)  # the charge stays: an invalid key
        else:
            guard.passed(address)
        return _known(key)

    async def org_for(self, authorization: str | None) -> str:
        """The organisation of the request's key; AuthError when it has none or an unknown one."""
        return (await self.key_for(bearer_key(authorization))).org_id


def _known(key: ApiKey | None) -> ApiKey:
    if key is None:
        raise AuthError("invalid API key")
    return key
