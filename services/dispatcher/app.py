"""Composition root of the dispatcher (cosmicpython's ``bootstrap.py``): :func:`bootstrap` builds the handlers'
dependencies from settings (tests pass replacements); :func:`create_app` subscribes a reader and a claimer per stream
of :data:`~services.dispatcher.handlers.HANDLERS` and runs the watchdog from start-up to shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial

import aiohttp
import structlog
from faststream import FastStream
from faststream.redis import RedisBroker
from livekit import api
from redis.asyncio import BlockingConnectionPool, Redis

from contracts.keys import watched_room_key
from contracts.streams import AGENT_JOINED, FLOW_EVENT, Groups
from services.dispatcher.dispatch_gate import RedisDispatchGate
from services.dispatcher.flow_relay import RoomWatchers
from services.dispatcher.flow_seq import RedisFlowSequencer
from services.dispatcher.group_retirement import RetirementPolicy, retire_forever
from services.dispatcher.handlers import BATCH_HANDLERS, HANDLERS, Dependencies, LiveKitServer, settle_due
from services.dispatcher.ledger import RedisSessionLedger
from services.dispatcher.live_sessions import RedisLiveSessions
from services.dispatcher.livekit_rooms import LiveKitRoomsClient
from services.dispatcher.pacing import DispatchPacer, PacingPolicy
from services.dispatcher.retries import RetryPolicy
from services.dispatcher.room_locks import RedisRoomLocks
from services.dispatcher.room_sweep import SweepPolicy, sweep_forever, sweep_once
from services.dispatcher.settings import DispatcherSettings
from services.dispatcher.status_changes import RedisStatusChanges
from services.dispatcher.watchdog import WatchdogPolicy, scan_once, watch_forever
from services.runtime.broker import CONNECTION_OPTIONS, new_broker
from services.runtime.concurrent_stream import subscribe_concurrent
from services.runtime.consuming import subscribe
from services.runtime.multi_stream import subscribe_streams_batch
from services.runtime.publishing import BrokerPublisher, EventPublisher
from services.runtime.redis_connection import DirectSendConnection
from services.runtime.streams import consumer_name, ensure_groups
from services.runtime.tasks import cancel_and_wait

SERVICE = "dispatcher"
# streams the dispatcher read in earlier versions: agent.joined (its watchdog is now disarmed by the status change)
RETIRED_STREAMS = (AGENT_JOINED,)
STOP_TASK_TIMEOUT_S = 5.0  # the watchdog and the room sweep stop within this at shutdown


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
            dispatch_with_room=settings.dispatch_with_room,
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
                connection_class=DirectSendConnection,
                **CONNECTION_OPTIONS,
            )
        )
        closers.append(redis.aclose)
    watched = redis.exists

    async def is_watched(room_name: str) -> bool:
        return bool(await watched(watched_room_key(room_name)))

    ledger = RedisSessionLedger(redis, settings.livekit_agent_name, settings.ledger_ttl_s)
    locks = RedisRoomLocks(redis, ttl_s=settings.room_lock_ttl_s, wait_s=settings.room_lock_wait_s)
    publisher = publisher or BrokerPublisher(broker)
    pacer = DispatchPacer(
        ledger.waiting, PacingPolicy(settings.dispatch_max_waiting, settings.dispatch_max_pacing_wait_s)
    )
    closers.insert(0, pacer.aclose)  # its look loop reads through the Redis client closed after it
    # the gate XADDs a session.dispatched in its last round trip (a pipeline of the gate's client): a publisher
    # given by a test (not the broker's) is called instead
    publish_in = publisher.publish_in if isinstance(publisher, BrokerPublisher) else None
    return Dependencies(
        rooms=rooms,
        locks=locks,
        ledger=ledger,
        publisher=publisher,
        watchers=RoomWatchers(rooms.room_watchers, settings.flow_watchers_cache_s, is_watched=is_watched),
        sequencer=RedisFlowSequencer(redis),
        pacer=pacer,
        retry=RetryPolicy(settings.retry_attempts, settings.retry_max_seconds, settings.retry_initial_s),
        relay_retry=RetryPolicy(settings.flow_relay_attempts, settings.livekit_timeout_s, settings.retry_initial_s),
        watchdog=WatchdogPolicy(
            settings.dispatch_join_timeout_s,
            settings.dispatch_max_attempts,
            settings.watchdog_lease_s,
            settings.watchdog_batch,
            settings.dispatch_join_timeout_min_s,
            settings.dispatch_ready_reserve_s,
            settings.dispatch_started_job_timeout_s,
        ),
        closers=tuple(closers),
        live=RedisLiveSessions(redis, settings.livekit_agent_name),
        gate=RedisDispatchGate(redis, locks, settings.livekit_agent_name, settings.ledger_ttl_s, publish_in),
        changes=RedisStatusChanges(redis, locks, settings.livekit_agent_name, settings.ledger_ttl_s),
        sweep=SweepPolicy(
            settings.room_sweep_interval_s,
            settings.room_sweep_grace_s,
            settings.room_sweep_batch,
            settings.room_sweep_max_batches,
        ),
    )


def create_app(settings: DispatcherSettings, build: Callable[[RedisBroker], Dependencies] | None = None) -> FastStream:
    """The dispatcher's FastStream app; ``build`` (default: :func:`bootstrap`) makes its dependencies."""
    broker = new_broker(settings.redis_url, connection_class=DirectSendConnection)
    deps = build(broker) if build is not None else bootstrap(settings, broker)
    consumer = consumer_name(SERVICE, settings.consumer_name)
    for stream, handler in HANDLERS.items():
        if stream == FLOW_EVENT:  # few workers (one by default) so a session's events reach watchers in order
            subscribe(broker, stream, group=Groups.DISPATCHER, consumer=consumer, handler=partial(handler, deps=deps),
                      max_workers=settings.flow_relay_workers)  # fmt: skip
            continue
        # each request in a task of its own, without FastStream's per-message path (services.runtime.concurrent_stream)
        subscribe_concurrent(broker, stream, group=Groups.DISPATCHER, consumer=consumer,
                             handler=partial(handler, deps=deps), max_workers=settings.max_workers)  # fmt: skip
    for stream, handler in BATCH_HANDLERS.items():
        # after a batch smaller than batch_max_records the next read rests status_batch_window_s first, so the
        # changes arriving meanwhile share one read, one script and one ack (sent with the next read); nothing
        # here is urgent to the second (clean-up, watchers' lifecycle events, the watchdog's disarming)
        subscribe_streams_batch(
            broker,
            [stream],
            group=Groups.DISPATCHER,
            consumer=consumer,
            handler=partial(handler, deps=deps),
            max_records=settings.batch_max_records,
            rest_ms=round(settings.status_batch_window_s * 1000),
        )
    background: set[asyncio.Task[None]] = set()  # the watchdog and the room sweep, from start-up to shutdown

    async def start() -> None:
        client = await broker.connect()
        await ensure_groups(client)
        # periodic, once idle: older replicas may still read the group during a rolling deploy (group_retirement)
        retiring = RetirementPolicy(
            RETIRED_STREAMS, Groups.DISPATCHER, settings.retire_group_idle_s, settings.retire_group_every_s
        )
        background.add(asyncio.create_task(retire_forever(client, retiring), name="group-retirement"))
        scan = partial(scan_once, deps.ledger, partial(settle_due, deps=deps), deps.watchdog)
        # never sleeps past the shortest join wait: a watch armed meanwhile is not due before the next look
        interval_s = min(settings.watchdog_scan_interval_s, deps.watchdog.shortest_wait_s)
        watch = watch_forever(scan, interval_s, deps.ledger.next_due)
        background.add(asyncio.create_task(watch, name="dispatch-watchdog"))
        if deps.live is not None:
            sweep = partial(sweep_once, deps.live, deps.rooms, deps.publisher.publish, deps.sweep, deps.retry)
            background.add(asyncio.create_task(sweep_forever(sweep, deps.sweep.interval_s), name="room-sweep"))
        structlog.get_logger(__name__).info("dispatcher_started", consumer=consumer, livekit=settings.livekit_http_url)

    async def stop_watchdog() -> None:
        for task in background:
            await cancel_and_wait(task, timeout_s=STOP_TASK_TIMEOUT_S, what=task.get_name())
        background.clear()

    async def close_clients() -> None:
        # After the broker stopped: handlers still in flight at shutdown need these until they finish.
        for close in deps.closers:
            await close()

    return FastStream(broker, on_startup=[start], on_shutdown=[stop_watchdog], after_shutdown=[close_clients])
