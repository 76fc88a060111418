"""Composition root of the session store: pool, broker, subscribers; nothing connects before start-up."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from faststream import FastStream
from redis.asyncio import Redis

from contracts.events import LifecycleEvent, SessionRequested
from contracts.streams import SUBSCRIPTIONS, Groups
from services.runtime.broker import CONNECTION_OPTIONS, new_broker
from services.runtime.database import connection_pool
from services.runtime.migrations import apply_migrations
from services.runtime.multi_stream import subscribe_streams_batch
from services.runtime.streams import consumer_name, ensure_groups
from services.session_store.announcing import StatusAnnouncer
from services.session_store.applying import handle_events
from services.session_store.expiry import EndRules, ExpiryAlarm, run_expiry
from services.session_store.metrics import SessionMetrics
from services.session_store.migrations import MIGRATIONS
from services.session_store.outbox import run_sweep
from services.session_store.repository import PostgresSessionRepository
from services.session_store.settings import SessionStoreSettings

SERVICE = "session_store"


def end_rules(settings: SessionStoreSettings) -> EndRules:
    """The end scan's rules from the settings."""
    return EndRules(settings.session_max_duration_s, settings.user_left_grace_s, settings.no_user_timeout_s)


def create_app(settings: SessionStoreSettings) -> FastStream:
    """Build the session store's FastStream app from its settings."""
    broker = new_broker(settings.redis_url)
    pool = connection_pool(settings, skip_check_within_s=1.0)  # a connection per batch, many a second
    repo = PostgresSessionRepository(pool)
    redis = Redis.from_url(settings.redis_url, **CONNECTION_OPTIONS)  # lazy: connects on first command
    publisher = StatusAnnouncer(broker, redis)
    background: set[asyncio.Task[None]] = set()
    consumer = consumer_name(SERVICE, settings.consumer_name)
    metrics = SessionMetrics(settings.metrics_org_labels, settings.metrics_flow_labels)
    alarm = ExpiryAlarm()

    async def on_events(events: list[LifecycleEvent]) -> None:
        await handle_events(events, repo, publisher, metrics)
        for event in events:
            if isinstance(event, SessionRequested):
                alarm.note(event.ready_deadline)  # the expiry scan wakes for it, however long its interval

    # One reader for all the store's streams: what arrived on any of them is one batch, one transaction (each
    # stream keeps its order; across streams the status machine takes events in any order).
    subscribe_streams_batch(
        broker,
        SUBSCRIPTIONS[Groups.SESSION_STORE],
        group=Groups.SESSION_STORE,
        consumer=consumer,
        handler=on_events,
        max_records=settings.batch_max_records,
        linger_ms=settings.batch_linger_ms,
        rest_ms=settings.batch_rest_ms,
    )

    async def start() -> None:
        await pool.open(wait=True, timeout=30)
        if settings.dev_mode:
            # Dev convenience only: in production the migrate command (deploy/docker/entrypoint.sh ``migrate``, the
            # k8s migrate Job) is the one place schemas change, before any replica starts.
            async with pool.connection() as conn:
                await apply_migrations(conn, SERVICE, MIGRATIONS)
        await broker.connect()
        await ensure_groups(redis)
        structlog.get_logger(__name__).info("session_store_started", consumer=consumer)

    async def start_expiry() -> None:
        background.add(
            asyncio.create_task(
                run_expiry(
                    repo,
                    publisher,
                    settings.expiry_interval_s,
                    settings.expiry_batch,
                    end_rules(settings),
                    settings.end_scan_interval_s,
                    metrics.status_moves,
                    alarm,
                )
            )
        )
        sweep = run_sweep(
            repo, publisher.publish_all, settings.announce_sweep_interval_s, settings.announce_sweep_after_s
        )
        background.add(asyncio.create_task(sweep))

    async def stop() -> None:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        background.clear()
        with contextlib.suppress(Exception):  # best effort: what stays is announced again by a sweep (at least once)
            await repo.forget_announced()
        await pool.close()
        await redis.aclose()

    return FastStream(broker, on_startup=[start], after_startup=[start_expiry], on_shutdown=[stop])
