"""Composition root of the webhook sender: pool, HTTP client, broker, its consumer group and the delivery loop."""

from __future__ import annotations

import asyncio

import aiohttp
import psycopg
import structlog
from faststream import FastStream
from redis.asyncio import Redis

from contracts.events import SessionStatusChanged
from contracts.streams import SESSION_STATUS_CHANGED, Groups
from services.runtime.batch import subscribe_batch
from services.runtime.broker import CONNECTION_OPTIONS, new_broker
from services.runtime.database import connection_pool
from services.runtime.migrations import apply_migrations
from services.runtime.sealed_secrets import report_unreadable, unreadable, warn_if_unsealed
from services.runtime.streams import consumer_name, ensure_groups
from services.webhooks.delivering import DeliveryLoop, LoopLimits
from services.webhooks.handling import on_status_changes
from services.webhooks.migrations import MIGRATIONS
from services.webhooks.repository import Attempt, DeliveryRepository, Outcome
from services.webhooks.retries import RetryPolicy
from services.webhooks.sender import new_session, send
from services.webhooks.settings import WebhookSettings

SERVICE = "webhooks"
SECRETS_CHECKED = 100  # endpoints whose secrets the start-up check opens


def retry_policy(settings: WebhookSettings) -> RetryPolicy:
    """The retry schedule from the settings."""
    return RetryPolicy(
        settings.webhook_max_attempts,
        settings.webhook_retry_base_s,
        settings.webhook_retry_factor,
        settings.webhook_retry_max_s,
        settings.webhook_retry_jitter,
    )


def loop_limits(settings: WebhookSettings) -> LoopLimits:
    """The delivery loop's bounds from the settings."""
    return LoopLimits(
        settings.webhook_timeout_s,
        settings.webhook_max_in_flight,
        settings.webhook_max_in_flight_per_endpoint,
        settings.webhook_poll_interval_s,
        settings.webhook_lease_margin_s,
    )


def create_app(settings: WebhookSettings) -> FastStream:
    """Build the webhook sender's FastStream app from its settings; nothing connects before start-up."""
    broker = new_broker(settings.redis_url)
    pool = connection_pool(settings, skip_check_within_s=1.0)  # a connection per batch, many a second
    repo = DeliveryRepository(pool)
    redis = Redis.from_url(settings.redis_url, **CONNECTION_OPTIONS)
    http: list[aiohttp.ClientSession] = []  # made in start(): a ClientSession belongs to the running loop
    background: set[asyncio.Task[None]] = set()
    consumer = consumer_name(SERVICE, settings.consumer_name)
    seal = settings.secret_seal()

    async def attempt(delivery: Attempt) -> Outcome:
        return await send(
            http[0], delivery, timeout_s=settings.webhook_timeout_s, allow_private=settings.allow_private, seal=seal
        )

    loop = DeliveryLoop(repo, attempt, retry_policy(settings), loop_limits(settings))

    async def on_changes(changes: list[SessionStatusChanged]) -> None:
        await on_status_changes(changes, repo, loop.wake)

    subscribe_batch(
        broker, SESSION_STATUS_CHANGED, group=Groups.WEBHOOKS, consumer=consumer, handler=on_changes,
        max_records=settings.batch_max_records,
    )  # fmt: skip

    async def start() -> None:
        await pool.open(wait=True, timeout=30)
        if settings.dev_mode:  # in production the migrate command changes schemas, before any replica starts
            async with pool.connection() as conn:
                await apply_migrations(conn, SERVICE, MIGRATIONS)
        await broker.connect()
        await ensure_groups(redis)
        http.append(new_session(allow_private=settings.allow_private, max_connections=settings.webhook_max_in_flight))
        log = structlog.get_logger(__name__)
        log.info("webhooks_started", consumer=consumer, allow_private=settings.allow_private, secrets_sealed=seal.seals)
        warn_if_unsealed(log, seal, dev_mode=settings.dev_mode)
        try:  # a key missing here fails every delivery: say so now, not at each one
            sample = await repo.stored_secrets(SECRETS_CHECKED)
        except psycopg.Error as exc:
            log.warning("webhook_secrets_not_checked", error=f"{type(exc).__name__}: {exc}")
        else:
            report_unreadable(log, unreadable(seal, sample), len(sample))

    async def start_loop() -> None:
        background.add(asyncio.create_task(loop.run()))

    async def stop() -> None:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        background.clear()
        for session in http:
            await session.close()
        await pool.close()
        await redis.aclose()

    return FastStream(broker, on_startup=[start], after_startup=[start_loop], on_shutdown=[stop])
