"""Composition root of the dispatcher: broker, LiveKit client, ledger, subscribers and the watchdog task."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import aiohttp
import structlog
from faststream import FastStream
from livekit import api
from redis.asyncio import BlockingConnectionPool, Redis

from contracts.events import AgentJoined, SessionRequested, SessionStatusChanged
from contracts.flow_events import FlowEvent
from contracts.keys import watched_room_key
from contracts.streams import AGENT_JOINED, FLOW_EVENT, SESSION_REQUESTED, SESSION_STATUS_CHANGED, Groups
from services.dispatcher.cleanup import clean_up_session
from services.dispatcher.dispatching import dispatch_session
from services.dispatcher.failure_notices import tell_if_dispatch_failed, tell_on_change
from services.dispatcher.flow_relay import RoomWatchers, lifecycle_event, relay_flow_event
from services.dispatcher.flow_seq import RedisFlowSequencer
from services.dispatcher.ledger import RedisSessionLedger
from services.dispatcher.live_sessions import RedisLiveSessions
from services.dispatcher.livekit_rooms import LiveKitRoomsClient
from services.dispatcher.pacing import DispatchPacer, PacingPolicy
from services.dispatcher.ports import SessionRecord
from services.dispatcher.retries import RetryPolicy
from services.dispatcher.room_locks import RedisRoomLocks
from services.dispatcher.room_sweep import SweepPolicy, sweep_forever, sweep_once, track_change
from services.dispatcher.settings import DispatcherSettings
from services.dispatcher.watchdog import WatchdogPolicy, handle_due, scan_once, watch_forever
from services.runtime.broker import CONNECTION_OPTIONS, new_broker
from services.runtime.consuming import subscribe
from services.runtime.publishing import BrokerPublisher
from services.runtime.streams import consumer_name, ensure_groups

SERVICE = "dispatcher"


@dataclass
class _Live:
    """Clients that exist only between start-up and shutdown (they need the running event loop)."""

    lk: api.LiveKitAPI
    rooms: LiveKitRoomsClient
    locks: RedisRoomLocks
    ledger: RedisSessionLedger
    redis: Redis
    watchdog: asyncio.Task[None]
    watchers: RoomWatchers
    sequencer: RedisFlowSequencer
    pacer: DispatchPacer
    live: RedisLiveSessions
    sweeper: asyncio.Task[None]


class _Started:
    """Holds the live clients from start-up to shutdown."""

    live: _Live | None = None

    def get(self) -> _Live:
        if self.live is None:
            raise RuntimeError("the dispatcher has not started")
        return self.live


def create_app(settings: DispatcherSettings) -> FastStream:
    """Build the dispatcher's FastStream app from its settings."""
    broker = new_broker(settings.redis_url)
    publisher = BrokerPublisher(broker)
    consumer = consumer_name(SERVICE, settings.consumer_name)
    retry = RetryPolicy(settings.retry_attempts, settings.retry_max_seconds, settings.retry_initial_s)
    relay_retry = RetryPolicy(settings.flow_relay_attempts, settings.livekit_timeout_s, settings.retry_initial_s)
    tell_once = RetryPolicy(1, settings.livekit_timeout_s, settings.retry_initial_s)  # the status change retries
    watchdog = WatchdogPolicy(
        settings.dispatch_join_timeout_s,
        settings.dispatch_max_attempts,
        settings.watchdog_lease_s,
        settings.watchdog_batch,
        settings.dispatch_join_timeout_min_s,
        settings.dispatch_ready_reserve_s,
    )
    pacing = PacingPolicy(settings.dispatch_max_waiting, settings.dispatch_max_pacing_wait_s)
    sweep = SweepPolicy(
        settings.room_sweep_interval_s,
        settings.room_sweep_grace_s,
        settings.room_sweep_batch,
        settings.room_sweep_max_batches,
    )
    room_options = api.CreateRoomRequest(
        empty_timeout=settings.room_empty_timeout_s,
        departure_timeout=settings.room_departure_timeout_s,
        max_participants=settings.room_max_participants,
    )
    started = _Started()

    async def on_requested(request: SessionRequested) -> None:
        with structlog.contextvars.bound_contextvars(
            session_id=request.session_id, correlation_id=request.correlation_id
        ):
            deps = started.get()
            # no longer than the session may wait for its agent at all
            async with deps.pacer.slot(max_wait_s=request.ready_deadline.timestamp() - time.time()):
                outcome = await dispatch_session(request, deps.rooms, deps.locks, deps.ledger, retry, watchdog)
            await tell_if_dispatch_failed(outcome, request.room_name, deps.rooms, deps.ledger, tell_once)
            if outcome is not None:
                await publisher.publish(outcome)

    async def on_agent_joined(event: AgentJoined) -> None:
        await started.get().ledger.mark_joined(event.session_id)

    async def on_status_changed(event: SessionStatusChanged) -> None:
        with structlog.contextvars.bound_contextvars(session_id=event.session_id, correlation_id=event.correlation_id):
            deps = started.get()
            record = await deps.ledger.get(event.session_id)
            # watchers see status changes as lifecycle flow events; unwatched rooms skip the round trip
            if record is not None and record.room_name and await deps.watchers.is_watched(record.room_name):
                await publisher.publish(lifecycle_event(event, record.room_name))
            await tell_on_change(event, record, deps.rooms, deps.ledger, relay_retry)  # before the room goes
            await track_change(event, record.room_name if record else "", deps.live, sweep)
            await clean_up_session(event, deps.rooms, deps.locks, deps.ledger, retry)

    async def on_flow_event(event: FlowEvent) -> None:
        with structlog.contextvars.bound_contextvars(session_id=event.session_id, correlation_id=event.correlation_id):
            deps = started.get()
            await relay_flow_event(event, deps.watchers, deps.rooms, deps.sequencer, relay_retry)

    async def settle(record: SessionRecord) -> None:
        with structlog.contextvars.bound_contextvars(
            session_id=record.session_id, correlation_id=record.correlation_id
        ):
            deps = started.get()
            outcome = await handle_due(record, deps.rooms, deps.locks, deps.ledger, retry, watchdog)
            await tell_if_dispatch_failed(outcome, record.room_name, deps.rooms, deps.ledger, tell_once)
            if outcome is not None:
                await publisher.publish(outcome)

    for stream, handler in (
        (SESSION_REQUESTED, on_requested),
        (AGENT_JOINED, on_agent_joined),
        (SESSION_STATUS_CHANGED, on_status_changed),
    ):
        subscribe(
            broker,
            stream,
            group=Groups.DISPATCHER,
            consumer=consumer,
            handler=handler,
            max_workers=settings.max_workers,
        )
    # Its own subscriber: few workers (one by default) so a session's flow events reach watchers in order.
    subscribe(
        broker,
        FLOW_EVENT,
        group=Groups.DISPATCHER,
        consumer=consumer,
        handler=on_flow_event,
        max_workers=settings.flow_relay_workers,
    )

    async def start() -> None:
        lk = api.LiveKitAPI(
            settings.livekit_http_url,
            settings.livekit_api_key,
            settings.livekit_api_secret,
            timeout=aiohttp.ClientTimeout(total=settings.livekit_timeout_s),
            failover=False,
        )
        rooms = LiveKitRoomsClient(lk, settings.livekit_agent_name, room_options, settings.livekit_max_in_flight)
        await ensure_groups(await broker.connect())
        # Locks and ledger get a pool of their own that waits for a free connection: the broker's pool
        # raises MaxConnectionsError when a burst of handlers needs more connections than it has.
        redis = Redis(
            connection_pool=BlockingConnectionPool.from_url(
                settings.redis_url,
                max_connections=settings.redis_max_connections,
                timeout=settings.livekit_timeout_s,
                **CONNECTION_OPTIONS,
            )
        )
        ledger = RedisSessionLedger(redis, settings.livekit_agent_name, settings.ledger_ttl_s)
        locks = RedisRoomLocks(redis, ttl_s=settings.room_lock_ttl_s, wait_s=settings.room_lock_wait_s)
        task = asyncio.create_task(
            watch_forever(lambda: scan_once(ledger, settle, watchdog), settings.watchdog_scan_interval_s),
            name="dispatch-watchdog",
        )

        async def is_watched(room_name: str) -> bool:
            return bool(await redis.exists(watched_room_key(room_name)))

        watchers = RoomWatchers(rooms.room_watchers, settings.flow_watchers_cache_s, is_watched=is_watched)
        pacer = DispatchPacer(ledger.waiting, pacing)
        live = RedisLiveSessions(redis, settings.livekit_agent_name)
        sweeper = asyncio.create_task(
            sweep_forever(lambda: sweep_once(live, rooms, publisher.publish, sweep, retry), sweep.interval_s),
            name="room-sweep",
        )
        sequencer = RedisFlowSequencer(redis)
        started.live = _Live(lk, rooms, locks, ledger, redis, task, watchers, sequencer, pacer, live, sweeper)
        structlog.get_logger(__name__).info("dispatcher_started", consumer=consumer, livekit=settings.livekit_http_url)

    async def stop_watchdog() -> None:
        if started.live is not None:
            for task in (started.live.watchdog, started.live.sweeper):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def close_clients() -> None:
        # After the broker stopped: handlers still in flight at shutdown need these until they finish.
        deps, started.live = started.live, None
        if deps is not None:
            await deps.lk.aclose()
            await deps.redis.aclose()

    return FastStream(broker, on_startup=[start], on_shutdown=[stop_watchdog], after_shutdown=[close_clients])
