"""Admin tasks behind the CLI: apply the API's migrations, create an organisation's API key (secret or publishable),
find or create a flow by name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from services.api.auth import KEY_PREFIX, PUBLISHABLE_PREFIX, check_key_format, hash_key, new_api_key
from services.api.cors import check_origin
from services.api.migrations import MIGRATIONS
from services.api.repository import ApiRepository, KeyGrant
from services.api.scopes import DEFAULT_SCOPES, checked_scopes
from services.runtime.migrations import migrate as apply_schema

SERVICE = "api"


class KeyConflictError(Exception):
    """The key given already exists for another organisation, or was revoked."""


@dataclass(frozen=True)
class KeyRequest:
    """What ``create-key`` was asked for: a secret key (``scopes``; None: the default ones) or a publishable one
    (``flow_ids`` and ``origins``, both required)."""

    publishable: bool = False
    scopes: Sequence[str] | None = None
    flow_ids: Sequence[str] = ()
    origins: Sequence[str] = ()


def key_grant(request: KeyRequest) -> KeyGrant:
    """The grant of a key request; ValueError saying what is missing or wrong."""
    if not request.publishable:
        if request.flow_ids or request.origins:
            raise ValueError("--flow and --origin are for publishable keys: add --publishable")
        scopes = checked_scopes(DEFAULT_SCOPES if request.scopes is None else request.scopes)
        if not scopes:
            raise ValueError("a secret key needs at least one --scope")
        return KeyGrant("secret", scopes=scopes, scopes_given=request.scopes is not None)
    if request.scopes:
        raise ValueError("publishable keys have no scopes (they only start sessions): drop --scope")
    if not request.flow_ids or not request.origins:
        raise ValueError(
            "a publishable key needs the flows it may start (--flow FLOW_ID) and the origins of the pages that use it "
            "(--origin https://app.example.com), each repeatable"
        )
    flow_ids = tuple(dict.fromkeys(f.strip() for f in request.flow_ids))
    if any(not f for f in flow_ids):
        raise ValueError("--flow needs a flow id")
    origins = tuple(dict.fromkeys(check_origin(o.strip()) for o in request.origins))
    return KeyGrant("publishable", flow_ids=flow_ids, origins=origins)


async def migrate(database_url: str) -> list[int]:
    """Apply the API's migrations not applied yet; return their versions."""
    return await apply_schema(database_url, SERVICE, MIGRATIONS)


async def create_key(
    database_url: str, org_name: str, key: str | None = None, request: KeyRequest | None = None
) -> tuple[str, str]:
    """Create (or, for a given key that already exists for this org, update) an API key; return (key, org id).

    The organisation is created when it does not exist yet. Only the key's SHA-256 is stored.
    """
    request = request or KeyRequest()
    grant = key_grant(request)
    key = key or new_api_key(request.publishable)
    check_key_format(key)
    if request.publishable != key.startswith(PUBLISHABLE_PREFIX):
        raise ValueError(f"publishable keys, and only they, start with {PUBLISHABLE_PREFIX!r}")
    await migrate(database_url)
    async with AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False) as pool:
        repo = ApiRepository(pool)
        org_id = await repo.ensure_org(org_name)
        owner = await repo.add_key(org_id, hash_key(key), key[: len(KEY_PREFIX) + 4], grant)
    if owner is None:
        raise KeyConflictError("that key was revoked; choose another")
    if owner != org_id:
        raise KeyConflictError("that key already belongs to another organisation; choose another")
    return key, org_id


async def ensure_flow(database_url: str, org_name: str, name: str, greeting: str) -> str:
    """The id of the organisation's flow called ``name``, created (with ``greeting``) when there is none."""
    await migrate(database_url)
    async with AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False) as pool:
        repo = ApiRepository(pool)
        org_id = await repo.ensure_org(org_name)
        existing = await repo.flow_named(org_id, name)
        if existing is not None:
            return existing
        return (await repo.create_flow(org_id, name, greeting, {}, {})).id
