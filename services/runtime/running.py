"""Run a consuming service's FastStream app: recover lost groups, trim safely, stop within a bound.

``run_app(create_app(settings))`` replaces ``asyncio.run(app.run())`` (on uvloop). FastStream alone exits with
code 0 when Redis loses a consumer group (restart without persistence, FLUSHALL); here a watchdog
re-creates the groups from id 0 and restarts the stopped subscribers, and the process exits non-zero
if that keeps failing past a deadline. On SIGTERM/SIGINT: stop reading, give in-flight handlers
their time, then make whatever this replica still holds pending claimable at once by the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time

import structlog
import uvloop
from faststream import FastStream
from faststream.redis import RedisBroker
from prometheus_client import REGISTRY
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio import Redis
from redis.exceptions import RedisError

from contracts.streams import SUBSCRIPTIONS
from services.runtime.heap import freeze_start_up_heap
from services.runtime.metrics_server import MetricsOptions, MetricsServer, start_metrics_server
from services.runtime.stream_metrics import StreamStatsCollector
from services.runtime.streams import ensure_groups
from services.runtime.trimming import run_trimmer

log = structlog.get_logger(__name__)
_RELEASED_IDLE_MS = 86_400_000  # a released message looks idle this long: past any claimer's DELIVERY_CLAIM_IDLE_S


class RunSettings(BaseSettings):
    """Supervision bounds of a consuming service, from the environment."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    shutdown_timeout_s: float = Field(default=20.0, gt=0, description="bound on a graceful stop")
    watch_every_s: float = Field(default=1.0, gt=0, description="how often subscribers are checked")
    recover_deadline_s: float = Field(default=300.0, gt=0, description="give up (exit 1) after failing this long")
    stream_trim_every_s: float = Field(default=60.0, gt=0)
    stream_retention_s: float = Field(default=3600.0, ge=0, description="entries younger than this are kept")


def run_app(app: FastStream, settings: RunSettings | None = None, metrics: MetricsOptions | None = None) -> None:
    """Run ``app`` until SIGTERM/SIGINT (serving its metrics if asked); exit non-zero if it failed."""
    code = uvloop.run(serve(app, settings or RunSettings(), metrics=metrics, freeze_heap=True))
    if code:
        sys.exit(code)


def _subscriptions(broker: RedisBroker) -> dict[str, tuple[str, ...]]:
    """The contracts' groups plus every (group, stream) this broker's subscribers read."""
    found: dict[str, set[str]] = {group: set(streams) for group, streams in SUBSCRIPTIONS.items()}
    for sub in broker.subscribers:
        stream_sub = getattr(sub, "stream_sub", None)
        if stream_sub is not None and stream_sub.group:
            found.setdefault(stream_sub.group, set()).add(stream_sub.name)
    return {group: tuple(sorted(streams)) for group, streams in found.items()}


def _own_places(broker: RedisBroker) -> set[tuple[str, str, str]]:
    places = set()
    for sub in broker.subscribers:
        stream_sub = getattr(sub, "stream_sub", None)
        if stream_sub is not None and stream_sub.group and stream_sub.consumer:
            places.add((stream_sub.name, stream_sub.group, stream_sub.consumer))
    return places


async def serve(
    app: FastStream,
    settings: RunSettings,
    stop: asyncio.Event | None = None,
    metrics: MetricsOptions | None = None,
    *,
    freeze_heap: bool = False,
) -> int:
    """Start ``app``, supervise it until ``stop`` is set (default: SIGTERM/SIGINT), stop it; return the exit code.
    With ``metrics``, serve this process's Prometheus metrics (and its groups' stream statistics) meanwhile. With
    ``freeze_heap`` (the process's own entrypoint), the start-up heap then leaves the collector's view
    (:mod:`services.runtime.heap`)."""
    broker = app.broker
    if not isinstance(broker, RedisBroker):
        raise TypeError("run_app needs a FastStream app built on a RedisBroker")
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    redis = await broker.connect()
    own = _own_places(broker)
    # A replica restarted under its predecessor's consumer name (dev's labels, a container restarted in its pod)
    # finds that predecessor's messages still pending under the name: make them claimable now, before this
    # replica reads anything, instead of after claim_idle_s.
    inherited = await _release_all(redis, own)
    if inherited:
        log.warning("inherited_pending_released", messages=inherited)
    exposed = _expose_metrics(metrics, redis, own) if metrics is not None else None
    await app.start()
    streams = sorted({stream for stream, _, _ in own})
    watchdog = asyncio.create_task(_watch(broker, redis, settings, stop))
    trimmer = asyncio.create_task(
        run_trimmer(redis, streams, every_s=settings.stream_trim_every_s, retention_s=settings.stream_retention_s)
    )
    frozen = freeze_start_up_heap() if freeze_heap else 0
    log.info("service_running", subscribers=len(broker.subscribers), frozen_objects=frozen)
    await asyncio.wait({watchdog, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    code = 1 if watchdog.done() and not stop.is_set() else 0
    for task in (watchdog, trimmer):
        task.cancel()
    await asyncio.gather(watchdog, trimmer, return_exceptions=True)
    await _stop(app, broker, redis, own, settings)
    if exposed is not None:
        server, collector = exposed
        if server is not None:
            server.close()
        if collector is not None:
            REGISTRY.unregister(collector)
    return code


def _expose_metrics(
    metrics: MetricsOptions, redis: Redis, own: set[tuple[str, str, str]]
) -> tuple[MetricsServer | None, StreamStatsCollector | None]:
    server, collector = start_metrics_server(metrics.host, metrics.port), None
    if server is not None and metrics.stream_stats:
        groups: dict[str, set[str]] = {}
        for stream, group, _ in own:
            groups.setdefault(group, set()).add(stream)
        subscriptions = {group: tuple(sorted(streams)) for group, streams in groups.items()}
        collector = StreamStatsCollector(redis, subscriptions, asyncio.get_running_loop())
        REGISTRY.register(collector)
    return server, collector


async def _watch(broker: RedisBroker, redis: Redis, settings: RunSettings, stop: asyncio.Event) -> None:
    """Restart subscribers that stopped on their own (lost group); return if that fails past the deadline."""
    subscriptions = _subscriptions(broker)
    failing_since: float | None = None
    while not stop.is_set():
        await asyncio.sleep(settings.watch_every_s)
        stopped = [sub for sub in broker.subscribers if not sub.running]
        if not stopped or stop.is_set():
            failing_since = None
            continue
        log.error("subscribers_stopped_recovering", count=len(stopped))
        try:
            await ensure_groups(redis, subscriptions)
            for sub in stopped:
                await sub.start()
            log.warning("subscribers_recovered", count=len(stopped))
            failing_since = None
        except (RedisError, OSError, TimeoutError) as exc:
            failing_since = failing_since or time.monotonic()
            log.error("subscribers_recovery_failed", error=str(exc))
            if time.monotonic() - failing_since > settings.recover_deadline_s:
                log.critical("giving_up", after_s=settings.recover_deadline_s)
                return


async def _stop(
    app: FastStream, broker: RedisBroker, redis: Redis, own: set[tuple[str, str, str]], settings: RunSettings
) -> None:
    """Stop reading, let in-flight handlers finish within the bound, then release what is still pending."""
    started = time.monotonic()
    stopping = asyncio.gather(*(sub.stop() for sub in broker.subscribers), return_exceptions=True)
    try:
        await asyncio.wait_for(stopping, timeout=settings.shutdown_timeout_s)
    except TimeoutError:
        log.warning("shutdown_bound_reached", bound_s=settings.shutdown_timeout_s)
    released = await _release_all(redis, own)
    remaining = max(1.0, settings.shutdown_timeout_s - (time.monotonic() - started))
    try:
        await asyncio.wait_for(app.stop(), timeout=remaining)
    except TimeoutError:
        log.warning("shutdown_hooks_bound_reached", bound_s=remaining)
    log.info("service_stopped", released=released, took_s=round(time.monotonic() - started, 2))


async def _release_all(redis: Redis, own: set[tuple[str, str, str]]) -> int:
    """Release what each of this replica's (stream, group, consumer) places holds; a missing group holds nothing."""
    released = 0
    for stream, group, consumer in sorted(own):
        with contextlib.suppress(RedisError, OSError):
            released += await release_pending(redis, stream, group, consumer, _RELEASED_IDLE_MS)
    return released


async def release_pending(redis: Redis, stream: str, group: str, consumer: str, idle_ms: int) -> int:
    """Mark ``consumer``'s pending messages idle for ``idle_ms`` already, so any claimer takes them now.

    XCLAIM ... IDLE with JUSTID keeps the owner and does not count a delivery.
    """
    released = 0
    cursor = "-"
    while True:
        entries = await redis.xpending_range(stream, group, min=cursor, max="+", count=500, consumername=consumer)
        if not entries:
            return released
        ids: list[int | bytes | str | memoryview[int]] = [
            entry["message_id"] for entry in entries if int(entry["time_since_delivered"]) < idle_ms
        ]
        if ids:
            await redis.xclaim(stream, group, consumer, min_idle_time=0, message_ids=ids, idle=idle_ms, justid=True)
            released += len(ids)
        last = entries[-1]["message_id"]
        cursor = "(" + (last.decode() if isinstance(last, bytes) else str(last))
