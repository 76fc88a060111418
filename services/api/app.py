"""Composition root of the API: the FastAPI app, its lifespan and routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import structlog
from fastapi import FastAPI
from faststream.redis import RedisBroker
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import BlockingConnectionPool, Redis

from services.api.auth import Authenticator
from services.api.body_limit import BodyLimitMiddleware
from services.api.credentials import CredentialIssuer
from services.api.dependencies import Resources
from services.api.errors import install_error_handlers
from services.api.fanout import StatusFanout
from services.api.migrations import MIGRATIONS
from services.api.outbox import AdmissionPolicy, RedisSessionOutbox
from services.api.repository import ApiRepository, Flow
from services.api.routes import events, flows, health, internal, sessions, watch, webhooks
from services.api.sessions import SessionPolicy, TokenIssuer
from services.api.settings import ApiSettings
from services.runtime.broker import CONNECTION_OPTIONS, new_broker
from services.runtime.delivery import is_transient
from services.runtime.migrations import apply_migrations
from services.runtime.publishing import BrokerPublisher
from services.runtime.streams import ensure_groups
from services.runtime.ttl_cache import TtlCache

SERVICE = "api"
REDIS_MAX_CONNECTIONS = 512


def _key_hash_prefix(digest: str) -> str:
    """How a cached API key appears in logs: the start of its stored hash (``api_keys.key_hash``), never the key."""
    return digest[:12]


def build_resources(settings: ApiSettings, pool: AsyncConnectionPool, redis: Redis, broker: RedisBroker) -> Resources:
    """Wire the per-process objects from settings and open clients."""
    repo = ApiRepository(pool)
    policy = AdmissionPolicy(settings.max_open_sessions_per_org, settings.admission_lease_s, settings.idempotency_ttl_s)
    # Both caches may answer from an expired entry only while the lookup fails because PostgreSQL is unreachable.
    key_cache: TtlCache[str, str] = TtlCache(
        settings.auth_cache_ttl_s,
        stale_s=settings.cache_stale_max_s,
        is_outage=is_transient,
        name="api_keys",
        log_key=_key_hash_prefix,
    )
    flow_cache: TtlCache[tuple[str, str], Flow] = TtlCache(
        settings.flow_cache_ttl_s, stale_s=settings.cache_stale_max_s, is_outage=is_transient, name="flows"
    )
    return Resources(
        settings=settings,
        pool=pool,
        redis=redis,
        broker=broker,
        repo=repo,
        outbox=RedisSessionOutbox(broker, redis, settings.session_snapshot_ttl_s, policy),
        issuer=TokenIssuer(
            settings.livekit_api_key, settings.livekit_api_secret, settings.token_ttl_s, settings.livekit_ws_url
        ),
        credentials=CredentialIssuer(settings.agent_credential_secret, settings.agent_credential_margin_s),
        policy=SessionPolicy(settings.ready_timeout_s, settings.admission_retry_after_s),
        auth=Authenticator(repo, key_cache),
        fanout=StatusFanout(redis, settings.sse_queue_size),
        publisher=BrokerPublisher(broker),
        flow_cache=flow_cache,
    )


def create_app(settings: ApiSettings) -> FastAPI:
    """Build the API app; connections open in the lifespan, not here."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            settings.database_url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            check=AsyncConnectionPool.check_connection,  # a connection left over from before an outage is replaced
            timeout=settings.db_pool_timeout_s,
            open=False,
        )
        await pool.open(wait=True, timeout=30)
        async with pool.connection() as conn:
            await apply_migrations(conn, SERVICE, MIGRATIONS)
        # A burst waits (bounded) for a free connection instead of failing at redis-py's default cap of 100.
        redis = Redis(
            connection_pool=BlockingConnectionPool.from_url(
                settings.redis_url, max_connections=REDIS_MAX_CONNECTIONS, timeout=5, **CONNECTION_OPTIONS
            )
        )
        broker = new_broker(settings.redis_url)
        await broker.connect()
        await ensure_groups(redis)
        resources = build_resources(settings, pool, redis, broker)
        app.state.resources = resources
        fanout = asyncio.create_task(resources.fanout.run(await resources.fanout.start_id()))
        structlog.get_logger(__name__).info("api_started", host=settings.api_host, port=settings.api_port)
        try:
            yield
        finally:
            fanout.cancel()
            with suppress(asyncio.CancelledError):
                await fanout
            await broker.stop()
            await redis.aclose()
            await pool.close()

    app = FastAPI(title="agentready", version="0.1.0", lifespan=lifespan)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    app.include_router(sessions.router)  # first: routes are matched in order, and this one holds the hot path
    app.include_router(health.router)
    app.include_router(flows.router)
    app.include_router(watch.router)
    app.include_router(events.router)
    app.include_router(internal.router)
    app.include_router(webhooks.router)
    return app
