"""``reseal-secrets``: every stored webhook secret sealed under the first ``WEBHOOK_SECRET_KEYS`` key.

Run once after turning sealing on (the secrets stored before are sealed) and after putting a new key first (those
sealed under an older key are sealed again), before the old key leaves the list. Endpoints are taken a page at a
time, each page locked in its own transaction, so an API rotating a secret meanwhile waits for it or goes first;
running it again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from services.runtime.sealed_secrets import SecretSeal, SecretUnreadable
from services.webhooks.repository import locked_secrets, replace_secrets

PAGE = 500


@dataclass
class Resealed:
    """What a reseal did: endpoints looked at, whose secrets it sealed, and those no key opens (left as they are)."""

    endpoints: int = 0
    changed: int = 0
    unreadable: list[str] = field(default_factory=list)


async def reseal_secrets(database_url: str, seal: SecretSeal, page: int = PAGE) -> Resealed:
    """Seal every endpoint's secret (and previous secret) under ``seal``'s first key where it is not yet."""
    if not seal.seals:
        raise ValueError("WEBHOOK_SECRET_KEYS is not set: there is no key to seal the secrets with")
    done = Resealed()
    after = ""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        while True:
            async with conn.transaction():
                rows = await locked_secrets(conn, after, page)
                for endpoint_id, secret, previous in rows:
                    done.endpoints += 1
                    try:
                        new_secret = seal.resealed(secret)
                        new_previous = seal.resealed(previous) if previous is not None else None
                    except SecretUnreadable:
                        done.unreadable.append(endpoint_id)
                        continue
                    if new_secret is None and new_previous is None:
                        continue
                    await replace_secrets(conn, endpoint_id, new_secret or secret, new_previous or previous)
                    done.changed += 1
            if len(rows) < page:
                return done
            after = rows[-1][0]
