"""Secrets the services must read back (webhook signing secrets) stored sealed: encrypted at rest with keys the
database never sees.

A webhook secret signs every delivery, so it cannot be hashed like a password; whoever reads the table (a backup, a
replica, a leaked dump) could sign webhooks as us. Sealed, a stored secret is ``fernet:`` + a Fernet token
(AES-128-CBC and HMAC-SHA256, from ``cryptography``) under ``WEBHOOK_SECRET_KEYS``: a comma-separated list of Fernet
keys, the first seals, every one opens (rotation: put the new key first, run ``python -m services.webhooks
reseal-secrets``, then drop the old one). A stored value without the prefix is a secret from before sealing was
turned on: it is opened as is, and the reseal command seals it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

SEALED_PREFIX = "fernet:"
KEY_HINT = (
    "generate one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


class SecretUnreadable(Exception):
    """A stored secret is sealed under a key this process does not have (or is not a token at all)."""


def parse_keys(name: str, value: str) -> tuple[str, ...]:
    """The keys of a comma-separated setting; ValueError naming ``name`` and the bad key's position when one is not a
    Fernet key (32 url-safe base64-encoded bytes)."""
    keys = tuple(key.strip() for key in value.split(",") if key.strip())
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ValueError(
                f"{name}: key {position} of {len(keys)} is not a Fernet key (32 url-safe base64-encoded bytes); "
                f"{KEY_HINT}"
            ) from None
    return keys


class SecretSeal:
    """Seals secrets with the first of ``keys`` and opens what any of them sealed; without keys it stores secrets as
    they are (and says so: :attr:`seals`)."""

    def __init__(self, keys: Sequence[str] = ()) -> None:
        fernets = [Fernet(key) for key in keys]
        self._first = fernets[0] if fernets else None
        self._fernet = MultiFernet(fernets) if fernets else None

    @property
    def seals(self) -> bool:
        """Whether new secrets are stored sealed."""
        return self._fernet is not None

    def seal(self, secret: str) -> str:
        """What to store for ``secret``: sealed under the first key, or ``secret`` itself without keys."""
        if self._fernet is None:
            return secret
        return SEALED_PREFIX + self._fernet.encrypt(secret.encode()).decode()

    def open(self, stored: str) -> str:
        """The secret a stored value holds; :class:`SecretUnreadable` when it is sealed under no key of ours."""
        if not stored.startswith(SEALED_PREFIX):
            return stored  # stored before sealing was turned on
        if self._fernet is None:
            raise SecretUnreadable("the secret is sealed but WEBHOOK_SECRET_KEYS is not set")
        try:
            return self._fernet.decrypt(stored[len(SEALED_PREFIX) :].encode()).decode()
        except InvalidToken:
            raise SecretUnreadable("the secret is sealed under none of the keys in WEBHOOK_SECRET_KEYS") from None

    def resealed(self, stored: str) -> str | None:
        """``stored`` sealed under the first key, or None when it already is (or there are no keys to seal with);
        :class:`SecretUnreadable` when no key opens it."""
        if self._fernet is None or self._first is None:
            return None
        if not stored.startswith(SEALED_PREFIX):
            return self.seal(stored)
        token = stored[len(SEALED_PREFIX) :].encode()
        try:
            self._first.decrypt(token)
            return None  # sealed under the first key already
        except InvalidToken:
            pass
        try:
            return SEALED_PREFIX + self._fernet.rotate(token).decode()
        except InvalidToken:
            raise SecretUnreadable("the secret is sealed under none of the keys in WEBHOOK_SECRET_KEYS") from None


class _Logger(Protocol):
    def warning(self, event: str, **fields: object) -> object: ...
    def error(self, event: str, **fields: object) -> object: ...


def unreadable(seal: SecretSeal, stored: Sequence[tuple[str, str]]) -> list[str]:
    """The ids of the (id, stored secret) pairs whose secret ``seal`` cannot open."""
    ids = []
    for endpoint_id, secret in stored:
        try:
            seal.open(secret)
        except SecretUnreadable:
            ids.append(endpoint_id)
    return ids


def report_unreadable(log: _Logger, ids: Sequence[str], looked_at: int) -> None:
    """Say at start-up that deliveries to these endpoints will fail until the key that sealed them is set."""
    if ids:
        log.error(
            "webhook_secrets_unreadable",
            reason=f"{len(ids)} of the {looked_at} newest endpoints' secrets open with none of WEBHOOK_SECRET_KEYS: "
            "their deliveries fail until the key that sealed them is in the list (then replay them)",
            endpoint_ids=list(ids[:10]),
        )


def warn_if_unsealed(log: _Logger, seal: SecretSeal, *, dev_mode: bool) -> None:
    """Outside dev mode, say once at start-up that webhook secrets are stored as they are, and what to set."""
    if not seal.seals and not dev_mode:
        log.warning(
            "webhook_secrets_not_sealed",
            reason="WEBHOOK_SECRET_KEYS is not set: new webhook signing secrets are stored unencrypted",
            fix=KEY_HINT,
        )
