"""Trace context survives the broker hop: a consumer's span continues the publisher's trace (real Redis)."""

from __future__ import annotations

import uuid

from faststream import FastStream
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from contracts.events import SessionDispatched
from services.runtime import tracing
from services.runtime.broker import new_broker
from services.runtime.consuming import subscribe
from services.runtime.publishing import BrokerPublisher
from services.runtime.streams import ensure_groups
from tests.delivery.harness import FAST
from tests.polling import wait_until

GROUP = "tracers"


def _consumer(redis_url: str, stream: str, seen: list[SessionDispatched], inner: list[str]) -> FastStream:
    broker = new_broker(redis_url, graceful_timeout=3.0)

    async def handle(event: SessionDispatched) -> None:
        seen.append(event)
        inner.append(tracing.current_traceparent())  # what the handler's own publishes would carry

    subscribe(broker, stream, group=GROUP, consumer="c1", handler=handle, policy=FAST)

    async def start() -> None:
        await ensure_groups(await broker.connect(), {GROUP: (stream,)})

    return FastStream(broker, on_startup=[start])


def _one(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = [s for s in spans.get_finished_spans() if s.name == name]
    assert len(found) == 1, [s.name for s in spans.get_finished_spans()]
    return found[0]


async def test_the_handlers_span_continues_the_publishers_trace(redis_url: str, spans: InMemorySpanExporter) -> None:
    stream = f"test:trace:{uuid.uuid4().hex[:10]}"
    session_id = uuid.uuid4().hex
    seen: list[SessionDispatched] = []
    inner: list[str] = []
    async with _consumer(redis_url, stream, seen, inner) as app:
        with tracing.span("publisher"):
            sent = tracing.current_traceparent()
            event = tracing.stamped(SessionDispatched(session_id=session_id, room_name="r", dispatch_id="d"))
            await app.broker.publish(event, stream=stream)  # as BrokerPublisher does, on this test's own stream
        await wait_until(lambda: bool(seen), deadline_s=10.0, what="the handler got the event")
        await wait_until(
            lambda: any(s.kind is SpanKind.CONSUMER for s in spans.get_finished_spans()),
            deadline_s=5.0,
            what="the handler's span ended",
        )
    parent = _one(spans, "publisher")
    handler = _one(spans, f"{GROUP} process session.dispatched")
    assert seen[0].traceparent == sent  # carried in the envelope
    assert handler.kind is SpanKind.CONSUMER
    assert handler.context.trace_id == parent.context.trace_id
    assert handler.parent is not None and handler.parent.span_id == parent.context.span_id
    assert handler.attributes is not None
    assert handler.attributes["messaging.destination.name"] == stream
    assert handler.attributes["agentready.session_id"] == session_id
    # inside the handler the current span is the handler's: the next hop's events continue from it
    assert inner[0].split("-")[1:3] == [f"{parent.context.trace_id:032x}", f"{handler.context.span_id:016x}"]


async def test_an_event_without_context_starts_a_trace_of_its_own(redis_url: str, spans: InMemorySpanExporter) -> None:
    stream = f"test:trace:{uuid.uuid4().hex[:10]}"
    seen: list[SessionDispatched] = []
    async with _consumer(redis_url, stream, seen, []) as app:
        event = SessionDispatched(session_id=uuid.uuid4().hex, room_name="r", dispatch_id="d")
        await app.broker.publish(event, stream=stream)  # an older producer: no traceparent
        await wait_until(lambda: bool(spans.get_finished_spans()), deadline_s=10.0, what="the handler's span")
    (handler,) = spans.get_finished_spans()
    assert seen[0].traceparent == ""
    assert handler.parent is None


class _Broker:
    """Keeps what BrokerPublisher hands the broker."""

    def __init__(self) -> None:
        self.published: list[SessionDispatched] = []

    async def publish(self, event: SessionDispatched, **_: object) -> None:
        self.published.append(event)


async def test_the_publisher_stamps_the_current_context_and_keeps_a_given_one(spans: InMemorySpanExporter) -> None:
    broker = _Broker()
    publisher = BrokerPublisher(broker)  # type: ignore[arg-type]
    given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with tracing.span("work"):
        current = tracing.current_traceparent()
        await publisher.publish(SessionDispatched(session_id="s1", room_name="r", dispatch_id="d"))
        await publisher.publish(SessionDispatched(session_id="s1", room_name="r", dispatch_id="d", traceparent=given))
    await publisher.publish(SessionDispatched(session_id="s1", room_name="r", dispatch_id="d"))  # no span: nothing
    assert [e.traceparent for e in broker.published] == [current, given, ""]
    assert current.startswith("00-") and len(current) == 55
