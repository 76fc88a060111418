"""Composition root of the API: the FastAPI app, its lifespan and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from faststream.redis import RedisBroker
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from services.api.dependencies import Resources
from services.api.errors import install_error_handlers
from services.api.migrations import MIGRATIONS
from services.api.outbox import RedisSessionOutbox
from services.api.repository import ApiRepository
from services.api.routes import flows, health, sessions
from services.api.sessions import TokenIssuer
from services.api.settings import ApiSettings
from services.runtime.migrations import apply_migrations
from services.runtime.streams import ensure_groups

SERVICE = "api"


def create_app(settings: ApiSettings) -> FastAPI:
    """Build the API app; connections open in the lifespan, not here."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max, open=False
        )
        await pool.open(wait=True, timeout=30)
        async with pool.connection() as conn:
            await apply_migrations(conn, SERVICE, MIGRATIONS)
        redis = Redis.from_url(settings.redis_url)
        broker = RedisBroker(settings.redis_url)
        await broker.connect()
        await ensure_groups(redis)
        app.state.resources = Resources(
            settings=settings,
            pool=pool,
            redis=redis,
            broker=broker,
            repo=ApiRepository(pool),
            outbox=RedisSessionOutbox(broker, redis, settings.session_snapshot_ttl_s),
            issuer=TokenIssuer(
                settings.livekit_api_key, settings.livekit_api_secret, settings.token_ttl_s, settings.livekit_ws_url
            ),
        )
        structlog.get_logger(__name__).info("api_started", host=settings.api_host, port=settings.api_port)
        try:
            yield
        finally:
            await broker.stop()
            await redis.aclose()
            await pool.close()

    app = FastAPI(title="agentready", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(flows.router)
    app.include_router(sessions.router)
    return app
