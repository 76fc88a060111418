"""OpenTelemetry traces, one per session: W3C trace context carried in the event envelope (``Event.traceparent``).

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set: then :func:`configure`
installs the SDK's tracer provider with a batching OTLP/HTTP exporter (the standard ``OTEL_*`` variables apply).
When off, the SDK is never imported and every helper here returns after one ``is None`` check: no span objects, no
context look-ups, no processing (measured in tests/tracing/test_tracing_off.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from contracts.events import Event

E = TypeVar("E", bound="Event")
_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_NOTHING: AbstractContextManager[None] = contextlib.nullcontext()
_propagator = TraceContextTextMapPropagator()
_tracer: Tracer | None = None  # None: tracing is off
_provider: TracerProvider | None = None


def enabled() -> bool:
    """Whether spans are recorded in this process."""
    return _tracer is not None


def configure(service: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Export this process's spans over OTLP/HTTP when an OTLP endpoint is set; return whether tracing is on.

    Idempotent (a thread-executor agent calls it per job process set-up). ``OTEL_SERVICE_NAME`` overrides the
    service name ``agentready-<service>``.
    """
    if _tracer is not None:
        return True
    if not any(environ.get(name) for name in _ENDPOINT_VARIABLES):
        return False
    # Imported here only: a process without an endpoint never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = environ.get("OTEL_SERVICE_NAME") or f"agentready-{service}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # endpoint, headers: OTEL_* variables
    trace.set_tracer_provider(provider)  # livekit-agents' own spans go to the same exporter
    use(provider)
    return True


def use(provider: TracerProvider | None) -> None:
    """Record spans with ``provider`` (None: tracing off). Tests give one with an in-memory exporter."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer("agentready") if provider is not None else None


def flush(timeout_s: float = 2.0) -> None:
    """Export the spans still buffered (a job process may end before the batch's next export); bounded."""
    if _provider is not None:
        _provider.force_flush(int(timeout_s * 1000))


def current_traceparent() -> str:
    """The W3C ``traceparent`` of the current span, or "" (tracing off, or no span)."""
    if _tracer is None:
        return ""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent", "")


def stamped(event: E) -> E:
    """``event`` carrying the current trace context, unless it carries one already (or tracing is off)."""
    if _tracer is None or event.traceparent:
        return event
    parent = current_traceparent()
    return event.model_copy(update={"traceparent": parent}) if parent else event


def span(
    name: str,
    *,
    parent: str = "",
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
    link_current: bool = False,
    only_within: bool = False,
) -> AbstractContextManager[object]:
    """A current span for the block: a child of the ``traceparent`` ``parent`` when given (else of the current
    span). ``link_current`` links the span that was current (e.g. livekit-agents' job span) when a parent is given;
    ``only_within``: none outside a trace (a periodic scan's calls would each start a trace of their own)."""
    if _tracer is None:
        return _NOTHING
    if only_within and not trace.get_current_span().get_span_context().is_valid:
        return _NOTHING
    context = _propagator.extract({"traceparent": parent}) if parent else None
    links = None
    if link_current and context is not None:
        here = trace.get_current_span().get_span_context()
        links = [Link(here)] if here.is_valid else None
    return _tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes, links=links)


def consumed(stream: str, group: str, message_id: str, event: object) -> AbstractContextManager[object]:
    """The span of one delivery of ``event`` to ``group``'s handler: a child of the span that published it."""
    if _tracer is None:
        return _NOTHING
    event_name = getattr(event, "type", stream)
    attributes = _consumer_attributes(stream, group, message_id, event)
    parent = getattr(event, "traceparent", "")
    return span(f"{group} process {event_name}", parent=parent, kind=SpanKind.CONSUMER, attributes=attributes)


def _consumer_attributes(stream: str, group: str, message_id: str, event: object) -> dict[str, str]:
    return {
        "messaging.system": "redis",
        "messaging.operation.type": "process",
        "messaging.destination.name": stream,
        "messaging.consumer.group.name": group,
        "messaging.message.id": message_id,
        "agentready.session_id": getattr(event, "session_id", ""),
    }


def annotate(**attributes: str | int | float | bool) -> None:
    """Add attributes to the current span (nothing when tracing is off)."""
    if _tracer is not None:
        trace.get_current_span().set_attributes(attributes)


@contextlib.contextmanager
def consumed_batch(stream: str, group: str, message_ids: list[str], events: list[E]) -> Iterator[list[E]]:
    """The spans of one delivery of a batch: one per event (as :func:`consumed` makes), each a child of the span
    that published it, all open while the batch is handled. Yields the events, each carrying its own span as
    ``traceparent`` (the same list when tracing is off), so what a batch handler publishes for an event continues
    that event's trace."""
    if _tracer is None:
        yield events
        return
    tracer = _tracer
    started = []
    stamped_events = []
    try:
        for message_id, event in zip(message_ids, events, strict=True):
            parent = event.traceparent
            span_ = tracer.start_span(
                f"{group} process {getattr(event, 'type', stream)}",
                context=_propagator.extract({"traceparent": parent}) if parent else None,
                kind=SpanKind.CONSUMER,
                attributes=_consumer_attributes(stream, group, message_id, event),
            )
            started.append(span_)
            carrier: dict[str, str] = {}
            _propagator.inject(carrier, context=trace.set_span_in_context(span_))
            stamped_events.append(event.model_copy(update={"traceparent": carrier.get("traceparent", "")}))
        yield stamped_events
    except Exception as exc:
        for span_ in started:
            span_.record_exception(exc)
            span_.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
        raise
    finally:
        for span_ in started:
            span_.end()
