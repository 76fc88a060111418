"""Serve this process's Prometheus metrics over HTTP (``METRICS_PORT``): the consumers' scrape endpoint.

prometheus_client's own threaded server: a scrape never waits for the service's event loop (except the stream
statistics, which read Redis on that loop, bounded: :mod:`services.runtime.stream_metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

log = structlog.get_logger(__name__)


@dataclass
class MetricsServer:
    """A running metrics endpoint; :meth:`close` stops it."""

    httpd: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        """The port it listens on (the free one picked when asked for port 0)."""
        return int(self.httpd.server_port)

    def close(self) -> None:
        """Stop serving and release the port."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(host: str, port: int, registry: CollectorRegistry = REGISTRY) -> MetricsServer | None:
    """Serve ``registry`` on ``http://host:port/metrics`` (any path answers) in a daemon thread; port 0: a free one.

    None, said in the log, when the port cannot be bound: the service runs on without metrics rather than not at all.
    """
    try:
        httpd, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.error("metrics_not_served", host=host, port=port, error=str(exc))
        return None
    server = MetricsServer(httpd, thread)
    log.info("metrics_serving", url=f"http://{host}:{server.port}/metrics")
    return server


@dataclass(frozen=True)
class MetricsOptions:
    """Where a consumer serves its metrics; build with :meth:`from_settings`."""

    host: str
    port: int  # 0: a free port (tests)
    stream_stats: bool = True  # export its groups' lag, pending and dead letters (read from Redis on scrape)

    @classmethod
    def from_settings(cls, host: str, port: int, stream_stats: bool = True) -> MetricsOptions | None:
        """None when ``METRICS_PORT`` is 0 (metrics off)."""
        return cls(host, port, stream_stats) if port else None
