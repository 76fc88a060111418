"""Composition root of the dispatcher, read top to bottom: the dependencies, the handlers (plain functions of an event
and the dependencies), the table from stream to handler, :func:`bootstrap` (builds the dependencies from settings;
tests pass replacements) and :func:`create_app` (a reader and a claimer per stream, the watchdog task)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import aiohttp
import structlog
from faststream import FastStream
from faststream.redis import RedisBroker
from livekit import api
from redis.asyncio import BlockingConnectionPool, Redis

from contracts.events import AgentJoined, SessionRequested, SessionStatusChanged
from contracts.flow_events import FlowEvent
from contracts.keys import watched_room_key
from contracts.streams import AGENT_JOINED, FLOW_EVENT, SESSION_REQUESTED, SESSION_STATUS_CHANGED, Groups
from services.dispatcher.cleanup import clean_up_session
from services.dispatcher.dispatching import dispatch_session
from services.dispatcher.flow_relay import DataSender, FlowSequencer, RoomWatchers, lifecycle_event, relay_flow_event
from services.dispatcher.flow_seq import RedisFlowSequencer
from services.dispatcher.ledger import RedisSessionLedger
from services.dispatcher.livekit_rooms import LiveKitRoomsClient
from services.dispatcher.pacing import DispatchPacer, PacingPolicy
from services.dispatcher.ports import LiveKitRooms, RoomLocks, SessionLedger, SessionRecord
from services.dispatcher.retries import RetryPolicy
from services.dispatcher.room_locks import RedisRoomLocks
from services.dispatcher.settings import DispatcherSettings
from services.dispatcher.watchdog import WatchdogPolicy, handle_due, scan_once, watch_forever
from services.runtime.broker import CONNECTION_OPTIONS, new_broker
from services.runtime.consuming import subscribe
from services.runtime.publishing import BrokerPublisher, EventPublisher
from services.runtime.streams import consumer_name, ensure_groups

SERVICE = "dispatcher"


class LiveKitServer(LiveKitRooms, DataSender, Protocol):
    """Everything the dispatcher asks of the LiveKit server API (rooms, dispatches, watchers, SendData)."""

    async def room_watchers(self, room_name: str) -> dict[str, str]:
        """Identity -> role of the room's watchers."""
        ...


@dataclass(frozen=True)
class Dependencies:
    """What the handlers use, built once by :func:`bootstrap`; ``closers`` run after the broker stopped."""

    rooms: LiveKitServer
    locks: RoomLocks
    ledger: SessionLedger
    publisher: EventPublisher
    watchers: RoomWatchers
    sequencer: FlowSequencer
    pacer: DispatchPacer
    retry: RetryPolicy
    relay_retry: RetryPolicy
    watchdog: WatchdogPolicy
    closers: tuple[Callable[[], Awaitable[None]], ...] = ()


async def on_requested(request: SessionRequested, deps: Dependencies) -> None:
    """Create the room and exactly one dispatch (paced), then announce how it went."""
    with structlog.contextvars.bound_contextvars(session_id=request.session_id, correlation_id=request.correlation_id):
        # no longer than the session may wait for its agent at all
        async with deps.pacer.slot(max_wait_s=request.ready_deadline.timestamp() - time.time()):
            outcome = await dispatch_session(request, deps.rooms, deps.locks, deps.ledger, deps.retry, deps.watchdog)
        if outcome is not None:
            await deps.publisher.publish(outcome)


async def on_agent_joined(event: AgentJoined, deps: Dependencies) -> None:
    """An agent joined: the watchdog stops watching its session."""
    await deps.ledger.mark_joined(event.session_id)


async def on_status_changed(event: SessionStatusChanged, deps: Dependencies) -> None:
    """Tell the room's watchers, and clean up the room and dispatch of a session that is over."""
    with structlog.contextvars.bound_contextvars(session_id=event.session_id, correlation_id=event.correlation_id):
        record = await deps.ledger.get(event.session_id)
        # watchers see status changes as lifecycle flow events; unwatched rooms skip the round trip
        if record is not None and record.room_name and await deps.watchers.is_watched(record.room_name):
            await deps.publisher.publish(lifecycle_event(event, record.room_name))
        await clean_up_session(event, deps.rooms, deps.locks, deps.ledger, deps.retry)


async def on_flow_event(event: FlowEvent, deps: Dependencies) -> None:
    """Relay a flow event to the watchers of its room allowed to see it."""
    with structlog.contextvars.bound_contextvars(session_id=event.session_id, correlation_id=event.correlation_id):
        await relay_flow_event(event, deps.watchers, deps.rooms, deps.sequencer, deps.relay_retry)


async def settle_due(record: SessionRecord, deps: Dependencies) -> None:
    """The watchdog's handler: re-dispatch (or give up on) a session whose agent did not join in time."""
    with structlog.contextvars.bound_contextvars(session_id=record.session_id, correlation_id=record.correlation_id):
        outcome = await handle_due(record, deps.rooms, deps.locks, deps.ledger, deps.retry, deps.watchdog)
        if outcome is not None:
            await deps.publisher.publish(outcome)


class Handler(Protocol):
    """A handler: the event (of its stream's type) and the dependencies."""

    def __call__(self, event: Any, /, deps: Dependencies) -> Awaitable[None]: ...


HANDLERS: Mapping[str, Handler] = {
    SESSION_REQUESTED: on_requested,
    AGENT_JOINED: on_agent_joined,
    SESSION_STATUS_CHANGED: on_status_changed,
    FLOW_EVENT: on_flow_event,
}


def bootstrap(
    settings: DispatcherSettings,
    broker: RedisBroker,
    *,
    rooms: LiveKitServer | None = None,
    redis: Redis | None = None,
    publisher: EventPublisher | None = None,
) -> Dependencies:
    """Build the dependencies from settings (no I/O: clients connect on first use); pass replacements to test."""
    closers: list[Callable[[], Awaitable[None]]] = []
    if rooms is None:
        client = LiveKitRoomsClient(
            partial(
                api.LiveKitAPI,
                settings.livekit_http_url,
                settings.livekit_api_key,
                settings.livekit_api_secret,
                timeout=aiohttp.ClientTimeout(total=settings.livekit_timeout_s),
                failover=False,
            ),
            settings.livekit_agent_name,
            api.CreateRoomRequest(
                empty_timeout=settings.room_empty_timeout_s,
                departure_timeout=settings.room_departure_timeout_s,
                max_participants=settings.room_max_participants,
            ),
            settings.livekit_max_in_flight,
        )
        rooms = client
        closers.append(client.aclose)
    if redis is None:
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
        closers.append(redis.aclose)
    watched = redis.exists

    async def is_watched(room_name: str) -> bool:
        return bool(await watched(watched_room_key(room_name)))

    ledger = RedisSessionLedger(redis, settings.livekit_agent_name, settings.ledger_ttl_s)
    return Dependencies(
        rooms=rooms,
        locks=RedisRoomLocks(redis, ttl_s=settings.room_lock_ttl_s, wait_s=settings.room_lock_wait_s),
        ledger=ledger,
        publisher=publisher or BrokerPublisher(broker),
        watchers=RoomWatchers(rooms.room_watchers, settings.flow_watchers_cache_s, is_watched=is_watched),
        sequencer=RedisFlowSequencer(redis),
        pacer=DispatchPacer(
            ledger.waiting, PacingPolicy(settings.dispatch_max_waiting, settings.dispatch_max_pacing_wait_s)
        ),
        retry=RetryPolicy(settings.retry_attempts, settings.retry_max_seconds, settings.retry_initial_s),
        relay_retry=RetryPolicy(settings.flow_relay_attempts, settings.livekit_timeout_s, settings.retry_initial_s),
        watchdog=WatchdogPolicy(
            settings.dispatch_join_timeout_s,
            settings.dispatch_max_attempts,
            settings.watchdog_lease_s,
            settings.watchdog_batch,
        ),
        closers=tuple(closers),
    )


def create_app(settings: DispatcherSettings, build: Callable[[RedisBroker], Dependencies] | None = None) -> FastStream:
    """The dispatcher's FastStream app; ``build`` (default: :func:`bootstrap`) makes its dependencies."""
    broker = new_broker(settings.redis_url)
    deps = build(broker) if build is not None else bootstrap(settings, broker)
    consumer = consumer_name(SERVICE, settings.consumer_name)
    for stream, handler in HANDLERS.items():
        subscribe(
            broker,
            stream,
            group=Groups.DISPATCHER,
            consumer=consumer,
            handler=partial(handler, deps=deps),
            # flow events get few workers (one by default) so a session's events reach watchers in order
            max_workers=settings.flow_relay_workers if stream == FLOW_EVENT else settings.max_workers,
        )
    background: set[asyncio.Task[None]] = set()  # the watchdog, from start-up to shutdown

    async def start() -> None:
        await ensure_groups(await broker.connect())
        scan = partial(scan_once, deps.ledger, partial(settle_due, deps=deps), deps.watchdog)
        background.add(
            asyncio.create_task(watch_forever(scan, settings.watchdog_scan_interval_s), name="dispatch-watchdog")
        )
        structlog.get_logger(__name__).info("dispatcher_started", consumer=consumer, livekit=settings.livekit_http_url)

    async def stop_watchdog() -> None:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        background.clear()

    async def close_clients() -> None:
        # After the broker stopped: handlers still in flight at shutdown need these until they finish.
        for close in deps.closers:
            await close()

    return FastStream(broker, on_startup=[start], on_shutdown=[stop_watchdog], after_shutdown=[close_clients])
