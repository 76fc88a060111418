"""The webhook sender's tests: a migrated database, Redis streams of their own, a real HTTP receiver, the API app."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from services.api.admin import KeyRequest, create_key
from services.api.app import create_app as create_api
from services.api.scopes import ALL_SCOPES
from services.api.settings import ApiSettings
from services.runtime.migrations import apply_migrations
from services.session_store.migrations import MIGRATIONS as STORE_MIGRATIONS
from services.webhooks.migrations import MIGRATIONS
from tests.stack_fixtures import separate_database
from tests.webhooks.receiver import Receiver


@pytest.fixture(scope="session")
async def database_url(database_url: str) -> AsyncIterator[str]:
    """A database of these tests' own: the session-wide stack of tests/e2e runs a webhook sender on the shared one,
    which claimed these tests' deliveries (and retried them on its own schedule) in a whole-suite run."""
    async with separate_database(database_url) as own:
        yield own


@pytest.fixture(scope="session")
def hooks_redis_url(redis_url: str) -> str:
    """A Redis database of its own: the status changes published here reach no other test's consumers."""
    return urlunsplit(urlsplit(redis_url)._replace(path="/9"))


@pytest.fixture(scope="session")
async def hooks_pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    """A pool on the test database with the webhook sender's (and the session store's) schema."""
    async with AsyncConnectionPool(database_url, min_size=1, max_size=8, open=False) as pool:
        async with pool.connection() as conn:
            await apply_migrations(conn, "session_store", STORE_MIGRATIONS)
            await apply_migrations(conn, "webhooks", MIGRATIONS)
        yield pool


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP server on a free loopback port that records what it is sent."""
    async with Receiver.running() as running:
        yield running


@pytest.fixture(scope="session")
async def hooks_api(hooks_redis_url: str, database_url: str, hooks_pool: AsyncConnectionPool) -> AsyncIterator[FastAPI]:
    """The API app (dev mode: http to loopback allowed), its lifespan running."""
    app = create_api(ApiSettings(redis_url=hooks_redis_url, database_url=database_url, dev_mode=True))
    async with app.router.lifespan_context(app):
        yield app


async def new_org_client(app: FastAPI, database_url: str, scopes: tuple[str, ...] = ALL_SCOPES) -> httpx.AsyncClient:
    """A client of a fresh organisation whose key has ``scopes``; its org id is in ``client.headers['x-test-org']``."""
    org = f"hooks-{uuid.uuid4().hex[:8]}"
    key, org_id = await create_key(database_url, org, request=KeyRequest(scopes=scopes))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(
        transport=transport,
        base_url="http://api.test",
        headers={"Authorization": f"Bearer {key}", "x-test-org": org_id},
    )


async def count_rows(database_url: str, query: str, *params: object) -> int:
    """One count from the database."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(query, params)  # type: ignore[arg-type]
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])
