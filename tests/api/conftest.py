"""The API app in-process (real Redis and PostgreSQL), reached through httpx with an organisation's API key."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from fastapi import FastAPI

from services.api.admin import KeyRequest, create_key
from services.api.app import create_app
from services.api.scopes import ALL_SCOPES
from services.api.settings import ApiSettings
from services.runtime.migrations import apply_migrations
from services.session_store.migrations import MIGRATIONS as STORE_MIGRATIONS
from services.webhooks.migrations import MIGRATIONS as WEBHOOK_MIGRATIONS


@pytest.fixture(scope="session")
def api_redis_url(redis_url: str) -> str:
    """A Redis database of its own: the requests these tests leave on the streams never reach other tests' stacks."""
    return urlunsplit(urlsplit(redis_url)._replace(path="/3"))


@pytest.fixture(scope="session")
def api_settings(api_redis_url: str, database_url: str) -> ApiSettings:
    """Settings pointing at the test servers, dev credentials allowed.

    Every test here reaches the app from one client address: its invalid-key limit would make one test's 401 depend
    on how many invalid keys the tests before it sent, so it is lifted (tests/api/test_auth_limits.py checks it)."""
    return ApiSettings(
        redis_url=api_redis_url, database_url=database_url, dev_mode=True, auth_failures_per_window=1_000_000
    )


async def _store_schema(database_url: str) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await apply_migrations(conn, "session_store", STORE_MIGRATIONS)
        await apply_migrations(conn, "webhooks", WEBHOOK_MIGRATIONS)  # the API's /api/webhooks reads its tables


@pytest.fixture(scope="session")
async def api_app(api_settings: ApiSettings) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running; the tables of the session store and the webhook sender exist."""
    await _store_schema(api_settings.database_url)
    app = create_app(api_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def api_key(api_app: FastAPI, database_url: str) -> str:
    """A key of a fresh organisation, with every scope (as keys made before scopes existed)."""
    key, _org = await create_key(database_url, f"org-{uuid.uuid4().hex[:8]}", request=KeyRequest(scopes=ALL_SCOPES))
    return key


@pytest.fixture(scope="session")
async def other_api_key(api_app: FastAPI, database_url: str) -> str:
    """A key of another organisation, with every scope."""
    key, _org = await create_key(database_url, f"other-{uuid.uuid4().hex[:8]}", request=KeyRequest(scopes=ALL_SCOPES))
    return key


def http_client(app: FastAPI, api_key: str | None) -> httpx.AsyncClient:
    """An HTTP client bound to the in-process ``app``, sending ``api_key`` when given."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.AsyncClient(transport=transport, base_url="http://api.test", headers=headers)


@pytest.fixture
async def client(api_app: FastAPI, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the first organisation."""
    async with http_client(api_app, api_key) as client:
        yield client


@pytest.fixture
async def other_client(api_app: FastAPI, other_api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of another organisation."""
    async with http_client(api_app, other_api_key) as client:
        yield client


@pytest.fixture
async def anonymous(api_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client that sends no API key."""
    async with http_client(api_app, None) as client:
        yield client


async def new_flow(client: httpx.AsyncClient, greeting: str = "Hello there", **extra: object) -> str:
    """Create a flow and return its id."""
    response = await client.post("/api/flows", json={"name": "support", "greeting": greeting, **extra})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])
