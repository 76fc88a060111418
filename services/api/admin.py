"""Admin tasks behind the CLI: apply the API's migrations, create an organisation's API key."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from services.api.auth import KEY_PREFIX, check_key_format, hash_key, new_api_key
from services.api.migrations import MIGRATIONS
from services.api.repository import ApiRepository
from services.runtime.migrations import migrate as apply_schema

SERVICE = "api"


class KeyConflictError(Exception):
    """The key given already exists for another organisation, or was revoked."""


async def migrate(database_url: str) -> list[int]:
    """Apply the API's migrations not applied yet; return their versions."""
    return await apply_schema(database_url, SERVICE, MIGRATIONS)


async def create_key(database_url: str, org_name: str, key: str | None = None) -> tuple[str, str]:
    """Create (or, for a given key that already exists for this org, keep) an API key; return (key, org id).

    The organisation is created when it does not exist yet. Only the key's SHA-256 is stored.
    """
    key = key or new_api_key()
    check_key_format(key)
    await migrate(database_url)
    async with AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False) as pool:
        repo = ApiRepository(pool)
        org_id = await repo.ensure_org(org_name)
        owner = await repo.add_key(org_id, hash_key(key), key[: len(KEY_PREFIX) + 4])
    if owner is None:
        raise KeyConflictError("that key was revoked; choose another")
    if owner != org_id:
        raise KeyConflictError("that key already belongs to another organisation; choose another")
    return key, org_id
