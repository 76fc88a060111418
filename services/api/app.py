"""Composition root of the API: the FastAPI app, its lifespan and routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from redis.asyncio import ConnectionPool, Redis
from starlette.types import Receive, Scope, Send

from services.api.body_limit import BodyLimitMiddleware
from services.api.cors import allowed_origins, install_cors
from services.api.dependencies import install
from services.api.errors import ERROR_RESPONSES, install_error_handlers
from services.api.fanout import StatusFanout
from services.api.hot_lane import HotLane
from services.api.lanes import Lane
from services.api.migrations import MIGRATIONS
from services.api.openapi import install_openapi
from services.api.routes import (
    demo,
    events,
    flows,
    health,
    internal,
    metrics,
    ops,
    sessions,
    watch,
    webhook_endpoints,
    webhooks,
)
from services.api.settings import ApiSettings
from services.api.storable import FREE_JSON_RULES
from services.api.webhook_lane import WebhookLane
from services.runtime.broker import CONNECTION_OPTIONS, new_broker
from services.runtime.database import connection_pool
from services.runtime.migrations import apply_migrations
from services.runtime.sealed_secrets import warn_if_unsealed
from services.runtime.streams import ensure_groups
from services.runtime.tasks import cancel_and_wait

SERVICE = "api"
DESCRIPTION = (
    "Starts LiveKit voice-agent sessions without blocking: `POST /api/flows/{flow_id}/sessions` answers at once. "
    "Every error is a JSON `ErrorBody` (`error`, and `detail` with each invalid field). Text must be storable (no "
    f"NUL character, no unpaired surrogate); a flow's free-form `definition` is limited to {FREE_JSON_RULES}."
)
REDIS_MAX_CONNECTIONS = 512


class ApiApp(FastAPI):
    """FastAPI, with lanes for its hot paths in front of its middleware stack (:mod:`services.api.lanes`)."""

    lanes: tuple[Lane, ...] = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A request a lane takes goes to it; everything else (the lifespan too) to FastAPI."""
        for lane in self.lanes if scope["type"] == "http" else ():
            args = lane.takes(scope)
            if args is not None:
                await lane.serve(scope, receive, send, args)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: ApiSettings) -> FastAPI:
    """Build the API app; connections open in the lifespan, not here."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = connection_pool(settings)
        await pool.open(wait=True, timeout=30)
        if settings.dev_mode:
            # Dev convenience only: in production the migrate command (deploy/docker/entrypoint.sh ``migrate``, the
            # k8s migrate Job) is the one place schemas change, before any replica starts.
            async with pool.connection() as conn:
                await apply_migrations(conn, SERVICE, MIGRATIONS)
        # Requests in flight are capped (MAX_REQUESTS_IN_FLIGHT, at most half of this), so a burst never runs
        # out of connections: the plain pool, without the blocking pool's lock and timer on every command.
        redis = Redis(
            connection_pool=ConnectionPool.from_url(
                settings.redis_url, max_connections=REDIS_MAX_CONNECTIONS, **CONNECTION_OPTIONS
            )
        )
        broker = new_broker(settings.redis_url)
        await broker.connect()
        await ensure_groups(redis)
        install(app.state, settings, pool, redis, broker)
        status_fanout: StatusFanout = app.state.fanout
        fanout = asyncio.create_task(status_fanout.run(await status_fanout.start_id()))
        log = structlog.get_logger(__name__)
        log.info("api_started", host=settings.api_host, port=settings.api_port)
        warn_if_unsealed(log, settings.secret_seal(), dev_mode=settings.dev_mode)
        try:
            yield
        finally:
            status_fanout.stop()  # ends its loop even if the cancellation below is lost (see StatusFanout.run)
            await cancel_and_wait(fanout, timeout_s=5.0, what="status fanout")
            await app.state.room_reader.aclose()
            await broker.stop()
            await redis.aclose()
            await pool.close()

    app = ApiApp(
        title="agentready",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        responses=ERROR_RESPONSES,  # every route documents the error body it really returns
        redirect_slashes=False,  # its redirect echoed the Host header; /api/flows/ is a 404 instead
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    cors = install_cors(app, allowed_origins(settings.cors_allow_origins, settings.dev_mode), settings.dev_mode)
    install_error_handlers(app)
    install_openapi(app)
    create_route = sessions.add_create_route(app)  # first: routes are matched in order, and this is the hot path
    app.lanes = (HotLane(app, create_route, vary_origin=cors), WebhookLane(app, settings, vary_origin=cors))
    app.include_router(sessions.router)
    app.include_router(health.router)
    app.include_router(flows.router)
    app.include_router(watch.router)
    app.include_router(events.router)
    app.include_router(internal.router)
    app.include_router(webhooks.router)
    app.include_router(webhook_endpoints.router)
    app.include_router(demo.router)
    app.include_router(metrics.router)
    app.include_router(ops.router)
    return app
