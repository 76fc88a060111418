"""The agent's flow events (stage started/finished, flow initialised, greeting spoken, failures) to the broker.

Events are queued and published in order by one background task, so a broker round trip never sits on
the readiness path; :meth:`FlowReporter.aclose` flushes what is left within a bound. Flow events are
observational: a publish that fails is logged and dropped, never raised into the pipeline.

Only watched rooms get them: with ``is_watched``, events are skipped until the room has a watcher (the
API marks the room when it mints a watcher token), so unwatched sessions cost one Redis EXISTS per
event here instead of an XADD plus a delivery to the relay, which would drop them anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from contracts.flow_events import FlowEvent, FlowEventKind
from services.runtime.publishing import EventPublisher

log = structlog.get_logger(__name__)

FLUSH_TIMEOUT_SECONDS = 3.0


class FlowReporter:
    """Publishes one session's flow events in the order they were emitted."""

    def __init__(
        self,
        publisher: EventPublisher,
        *,
        session_id: str,
        correlation_id: str,
        room_name: str,
        is_watched: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self._publisher = publisher
        self._is_watched = is_watched
        self._watched = is_watched is None  # once watched, a room stays watched
        self.skipped = 0
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
                if not await self._room_watched(event.room_name):
                    self.skipped += 1
                    continue
                await self._publisher.publish(event)
            except Exception as exc:  # noqa: BLE001 - watchers miss one event; the session goes on
                log.warning("flow_event_dropped", name=event.name, error=f"{type(exc).__name__}: {exc}")

    async def _room_watched(self, room_name: str) -> bool:
        if not self._watched and self._is_watched is not None:
            self._watched = await self._is_watched(room_name)
        return self._watched

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
