"""The API app in-process (real Redis and PostgreSQL), reached through httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from services.api.app import create_app
from services.api.settings import ApiSettings
from services.runtime.migrations import apply_migrations
from services.session_store.migrations import MIGRATIONS as STORE_MIGRATIONS


@pytest.fixture(scope="session")
def api_settings(redis_url: str, database_url: str) -> ApiSettings:
    """Settings pointing at the test servers, dev credentials allowed."""
    return ApiSettings(redis_url=redis_url, database_url=database_url, dev_mode=True)


@pytest.fixture(scope="session")
async def api_app(api_settings: ApiSettings) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running; the sessions table exists as the session store would create it."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(api_settings.database_url) as conn:
        await apply_migrations(conn, "session_store", STORE_MIGRATIONS)
    app = create_app(api_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(api_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client bound to the in-process app."""
    transport = httpx.ASGITransport(app=api_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client
