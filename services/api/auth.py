"""API keys: how they look, how they are stored (SHA-256 of the key) and how a request's key finds its org."""

from __future__ import annotations

import hashlib
import secrets
from typing import Protocol

from services.runtime.ttl_cache import TtlCache

KEY_PREFIX = "ar_"
MIN_KEY_LENGTH = 16
MAX_KEY_LENGTH = 200


class AuthError(Exception):
    """The request carries no API key, or one that is not valid: answered with 401."""


class KeyLookup(Protocol):
    """Finds the organisation of a key hash."""

    async def org_for_key_hash(self, key_hash: str) -> str | None:
        """The organisation owning a live key with this hash, or None."""
        ...


def new_api_key() -> str:
    """A fresh key: the prefix and 32 random bytes, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


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
    """Resolves API keys to organisations, remembering recent answers briefly (revocation takes up to the TTL)."""

    def __init__(self, lookup: KeyLookup, cache: TtlCache[str, str]) -> None:
        """``cache`` maps key hashes to organisations; its policy (TTL, use during an outage) is the caller's."""
        self._lookup = lookup
        self._cache = cache

    async def org_for(self, authorization: str | None) -> str:
        """The organisation of the request's key; AuthError when it has none or an unknown one."""
        digest = hash_key(bearer_key(authorization))
        org_id = await self._cache.get(digest, lambda: self._lookup.org_for_key_hash(digest))
        if org_id is None:
            raise AuthError("invalid API key")
        return org_id
