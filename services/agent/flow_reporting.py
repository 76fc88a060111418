"""The agent's flow events (stage started/finished, flow initialised, greeting spoken, failures) to the broker.

Events are queued and published in order by one background task, so a broker round trip never sits on
the readiness path; :meth:`FlowReporter.aclose` flushes what is left within a bound. Flow events are
observational: a publish that fails is logged and dropped, never raised into the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from contracts.flow_events import FlowEvent, FlowEventKind
from services.agent.events import EventPublisher

log = structlog.get_logger(__name__)

FLUSH_TIMEOUT_SECONDS = 3.0


class FlowReporter:
    """Publishes one session's flow events in the order they were emitted."""

    def __init__(self, publisher: EventPublisher, *, session_id: str, correlation_id: str, room_name: str) -> None:
        self._publisher = publisher
        self._ids = {"session_id": session_id, "correlation_id": correlation_id, "room_name": room_name}
        self._queue: asyncio.Queue[FlowEvent | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def emit(
        self,
        kind: FlowEventKind,
        name: str,
        data: dict[str, Any] | None = None,
        *,
        details: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        """Queue an event (timestamped now); never blocks, never raises."""
        event = FlowEvent(**self._ids, kind=kind, name=name, data=data or {}, details=details or {}, error=error or {})
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="flow-events")
        self._queue.put_nowait(event)

    async def _drain(self) -> None:
        while (event := await self._queue.get()) is not None:
            try:
                await self._publisher.publish(event)
            except Exception as exc:  # noqa: BLE001 - watchers miss one event; the session goes on
                log.warning("flow_event_dropped", name=event.name, error=f"{type(exc).__name__}: {exc}")

    async def aclose(self, timeout: float = FLUSH_TIMEOUT_SECONDS) -> None:  # noqa: ASYNC109 - bounded flush
        """Publish what is queued within ``timeout`` s, then stop (what is left is dropped and logged)."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._task)
        except TimeoutError:
            log.warning("flow_events_unflushed", left=self._queue.qsize())
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
