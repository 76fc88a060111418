"""With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, spans reach that endpoint over OTLP/HTTP (a local receiver here)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

_EXPORT = """
from opentelemetry import trace
from services.runtime import tracing
assert tracing.configure("probe")
with tracing.span("exported-span"):
    pass
tracing.flush(5)
print(type(trace.get_tracer_provider()).__name__)
"""


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    """An OTLP/HTTP stand-in: keeps every POST's path, content type and body."""
    received: list[tuple[str, str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append((self.path, self.headers.get("Content-Type", ""), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_spans_are_exported_to_the_configured_endpoint(receiver: tuple[str, list[tuple[str, str, bytes]]]) -> None:
    url, received = receiver
    env = {"PATH": "/usr/bin:/bin", "OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_SERVICE_NAME": "agentready-probe-x"}
    out = subprocess.run([sys.executable, "-c", _EXPORT], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "TracerProvider"  # the SDK's, set globally (livekit-agents' spans use it too)
    ((path, content_type, body),) = received
    assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
    assert b"exported-span" in body and b"agentready-probe-x" in body
