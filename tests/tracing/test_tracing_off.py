"""Without an OTLP endpoint tracing costs nothing: no SDK tracer provider, no spans, the events unchanged."""

from __future__ import annotations

import subprocess
import sys
import timeit

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from contracts.events import SessionDispatched
from services.runtime import tracing

_NO_SDK = """
import sys
import services.api.app, services.dispatcher.app, services.session_store.app
from opentelemetry import trace
from services.runtime import tracing
assert tracing.configure("api") is False
print(type(trace.get_tracer_provider()).__name__, any(m.startswith("opentelemetry.sdk.trace") for m in sys.modules))
"""


def test_no_endpoint_no_sdk_tracer_provider() -> None:
    env = {"PATH": "/usr/bin:/bin"}  # no OTEL_* variables
    out = subprocess.run(
        [sys.executable, "-c", _NO_SDK], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["ProxyTracerProvider", "False"]


def test_the_endpoint_turns_it_on_and_the_off_path_does_nothing() -> None:
    assert tracing.configure("api", {}) is False
    assert not tracing.enabled()
    event = SessionDispatched(session_id="s1", room_name="r", dispatch_id="d")
    assert tracing.stamped(event) is event
    assert tracing.current_traceparent() == ""
    assert tracing.span("x") is tracing.consumed("s", "g", "1-0", event)  # one shared null context, nothing built


def test_what_a_delivery_costs_with_tracing_off_and_on(spans: InMemorySpanExporter) -> None:
    event = SessionDispatched(session_id="s1", room_name="r", dispatch_id="d")

    def delivery() -> None:  # what the runtime adds per message: the consumer span and stamping what it publishes
        with tracing.consumed("agentready:session.dispatched", "session_store", "1-0", event):
            tracing.stamped(event)

    on_us = min(timeit.repeat(delivery, number=1000, repeat=3)) / 1000 * 1e6
    tracing.use(None)
    off_us = min(timeit.repeat(delivery, number=20_000, repeat=3)) / 20_000 * 1e6
    print(f"tracing per delivery: off {off_us:.2f} us, on (SDK, in-memory export) {on_us:.1f} us")
    assert off_us < 2.0  # a None check and a shared null context; the SDK path costs tens of microseconds


def test_a_span_only_within_a_trace_is_none_outside_one(spans: InMemorySpanExporter) -> None:
    with tracing.span("scan's call", only_within=True):
        pass
    with tracing.span("request"), tracing.span("call", only_within=True):
        pass
    assert sorted(s.name for s in spans.get_finished_spans()) == ["call", "request"]
