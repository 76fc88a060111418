"""Stack environments for tests: a stack of the e2e profile on the suite's servers, and separate databases.

Shared by tests/e2e and tests/devstack (the demo's stack); fault and benchmark stacks use devstack.stack too.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

import psycopg

from devstack.profiles import E2E, Profile
from devstack.stack import StackHandle, start_stack


def with_redis_db(url: str, db: int) -> str:
    """``url`` pointing at another logical database of the same Redis server (streams are per database)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


@asynccontextmanager
async def separate_database(database_url: str) -> AsyncIterator[str]:
    """A fresh database on the same PostgreSQL server, dropped afterwards."""
    name = f"agentready_e2e_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    finally:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def running_stack(
    redis_url: str,
    database_url: str,
    services: Sequence[str],
    extra_env: dict[str, str] | None = None,
    profile: Profile = E2E,
) -> AsyncIterator[StackHandle]:
    """``profile`` (e2e by default, ``extra_env`` on top) with ``services``, stopped after the block."""
    profile = replace(profile, env={**profile.env, **(extra_env or {})})
    async with await start_stack(profile, redis_url=redis_url, database_url=database_url, services=services) as stack:
        yield stack
