"""Composition root of the dispatcher: broker, LiveKit client, subscribers."""

from __future__ import annotations

import aiohttp
import structlog
from faststream import FastStream
from faststream.redis import RedisBroker
from livekit import api

from contracts.events import SessionRequested
from contracts.streams import SESSION_REQUESTED, Groups
from services.dispatcher.dispatching import RetryPolicy, dispatch_session
from services.dispatcher.livekit_rooms import LiveKitRoomsClient
from services.dispatcher.room_locks import RedisRoomLocks
from services.dispatcher.settings import DispatcherSettings
from services.runtime.consuming import subscribe
from services.runtime.publishing import BrokerPublisher
from services.runtime.streams import consumer_name, ensure_groups

SERVICE = "dispatcher"


class _Live:
    """Clients that exist only between start-up and shutdown (they need the running event loop)."""

    lk: api.LiveKitAPI | None = None
    rooms: LiveKitRoomsClient
    locks: RedisRoomLocks


def create_app(settings: DispatcherSettings) -> FastStream:
    """Build the dispatcher's FastStream app from its settings."""
    broker = RedisBroker(settings.redis_url)
    publisher = BrokerPublisher(broker)
    consumer = consumer_name(SERVICE, settings.consumer_name)
    policy = RetryPolicy(settings.retry_attempts, settings.retry_max_seconds, settings.retry_initial_s)
    room_options = api.CreateRoomRequest(
        empty_timeout=settings.room_empty_timeout_s,
        departure_timeout=settings.room_departure_timeout_s,
        max_participants=settings.room_max_participants,
    )
    live = _Live()

    async def on_requested(request: SessionRequested) -> None:
        with structlog.contextvars.bound_contextvars(
            session_id=request.session_id, correlation_id=request.correlation_id
        ):
            outcome = await dispatch_session(request, live.rooms, live.locks, policy)
            await publisher.publish(outcome)

    subscribe(
        broker,
        SESSION_REQUESTED,
        group=Groups.DISPATCHER,
        consumer=consumer,
        handler=on_requested,
        max_workers=settings.max_workers,
    )

    async def start() -> None:
        lk = api.LiveKitAPI(
            settings.livekit_http_url,
            settings.livekit_api_key,
            settings.livekit_api_secret,
            timeout=aiohttp.ClientTimeout(total=settings.livekit_timeout_s),
            failover=False,
        )
        live.lk = lk
        live.rooms = LiveKitRoomsClient(lk, settings.livekit_agent_name, room_options, settings.livekit_max_in_flight)
        redis = await broker.connect()
        live.locks = RedisRoomLocks(redis, ttl_s=settings.livekit_timeout_s * settings.retry_attempts + 10)
        await ensure_groups(redis)
        structlog.get_logger(__name__).info("dispatcher_started", consumer=consumer, livekit=settings.livekit_http_url)

    async def stop() -> None:
        if live.lk is not None:
            await live.lk.aclose()

    return FastStream(broker, on_startup=[start], on_shutdown=[stop])
