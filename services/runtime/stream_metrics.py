"""Stream lag, pending and dead-letter counts per group, read from Redis when Prometheus scrapes.

A custom collector: the scrape (in the metrics server's thread) runs :func:`~services.runtime.stream_stats.status`
on the service's event loop, bounded by a timeout, and reuses its answer for ``min_interval_s`` (several scrapers,
or a fast scrape interval, cost one Redis round per interval). Only this service's groups are reported; its
replicas report the same numbers, so dashboards take ``max by (stream, group)``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from services.runtime.stream_stats import GroupStatus, status

log = structlog.get_logger(__name__)

_LABELS = ("stream", "group")


class StreamStatsCollector(Collector):
    """Gauges of ``subscriptions`` (group -> streams) from Redis, refreshed at most every ``min_interval_s``."""

    def __init__(
        self,
        redis: Redis,
        subscriptions: dict[str, tuple[str, ...]],
        loop: asyncio.AbstractEventLoop,
        *,
        timeout_s: float = 2.0,
        min_interval_s: float = 5.0,
    ) -> None:
        self._redis, self._subscriptions, self._loop = redis, subscriptions, loop
        self._timeout_s, self._min_interval_s = timeout_s, min_interval_s
        self._lock = threading.Lock()
        self._rows: list[GroupStatus] = []
        self._read_at = float("-inf")
        self._up = 0.0

    def describe(self) -> Iterator[Metric]:
        """The families this collector yields (so registering it never reads Redis)."""
        yield from stream_metric_families()

    def collect(self) -> Iterator[Metric]:
        """The latest numbers, read now unless a read younger than ``min_interval_s`` is at hand."""
        rows, up = self._refresh()
        lag, pending, oldest, dead, stats_up = stream_metric_families()
        for row in rows:
            labels = [row.stream, row.group]
            lag.add_metric(labels, row.lag)
            pending.add_metric(labels, row.pending)
            oldest.add_metric(labels, row.oldest_pending_age_s or 0.0)
            dead.add_metric(labels, row.dead_letters)
        stats_up.add_metric([], up)
        yield from (lag, pending, oldest, dead, stats_up)

    def _refresh(self) -> tuple[list[GroupStatus], float]:
        with self._lock:  # concurrent scrapes share one read
            if time.monotonic() - self._read_at < self._min_interval_s:
                return self._rows, self._up
            self._read_at = time.monotonic()
            try:
                rows = self._read()
            except Exception as exc:  # noqa: BLE001 -- Redis down or slow: the scrape answers, saying it is stale
                log.warning("stream_stats_failed", error=f"{type(exc).__name__}: {exc}")
                self._up = 0.0
                return self._rows, self._up
            self._rows = [row for row in rows if row.stream in self._subscriptions.get(row.group, ())]
            self._up = 1.0
            return self._rows, self._up

    def _read(self) -> list[GroupStatus]:
        if _running_loop() is self._loop:
            raise RuntimeError("collected on the service's own event loop: it cannot wait for itself")
        future = asyncio.run_coroutine_threadsafe(status(self._redis, self._subscriptions), self._loop)
        try:
            return future.result(timeout=self._timeout_s)
        except BaseException:
            future.cancel()
            raise


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def stream_metric_families() -> tuple[GaugeMetricFamily, ...]:
    """The (empty) gauge families of the stream statistics, with their names, help and labels."""
    return (
        GaugeMetricFamily(
            "agentready_stream_lag", "Entries not yet delivered to the group (a capped scan).", labels=_LABELS
        ),
        GaugeMetricFamily(
            "agentready_stream_pending", "Entries delivered to the group and not yet acknowledged.", labels=_LABELS
        ),
        GaugeMetricFamily(
            "agentready_stream_oldest_pending_age_seconds",
            "Age of the group's oldest pending entry (0: none pending).",
            labels=_LABELS,
        ),
        GaugeMetricFamily(
            "agentready_stream_dead_letters", "Entries the group gave up on (in the :dead stream).", labels=_LABELS
        ),
        GaugeMetricFamily("agentready_stream_stats_up", "1 if the last read of the stream statistics succeeded."),
    )
