"""The consumers' metrics endpoint: serves the registry over HTTP, and a port already taken leaves the service
running without metrics (said in the log) instead of stopping it."""

from __future__ import annotations

import socket
import urllib.request

from prometheus_client import CollectorRegistry, Counter

from services.runtime.metrics_server import MetricsOptions, start_metrics_server


def test_serves_the_registry_and_stops() -> None:
    registry = CollectorRegistry()
    Counter("agentready_test_things", "Things.", registry=registry).inc(3)
    server = start_metrics_server("127.0.0.1", 0, registry)
    assert server is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
            assert "agentready_test_things_total 3.0" in response.read().decode()
    finally:
        server.close()


def test_a_taken_port_means_no_metrics_not_no_service() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert start_metrics_server("127.0.0.1", taken.getsockname()[1], CollectorRegistry()) is None


def test_metrics_port_zero_means_off() -> None:
    assert MetricsOptions.from_settings("127.0.0.1", 0) is None
    assert MetricsOptions.from_settings("0.0.0.0", 9464) == MetricsOptions("0.0.0.0", 9464)
