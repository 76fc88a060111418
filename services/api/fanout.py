"""Status changes for SSE clients: one XREAD loop per API process hands each change to that session's listeners.

No consumer group: every replica must see every change. A listener whose bounded queue fills up is dropped
(its stream ends; the client reconnects and first gets the current status), never the process.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from faststream.redis.parser import BinaryMessageFormatV1
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from contracts.events import SessionStatusChanged
from contracts.streams import SESSION_STATUS_CHANGED

log = structlog.get_logger(__name__)

DROPPED = None  # put on a listener's queue when it fell too far behind


class Listener:
    """One SSE client's queue of status changes."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[SessionStatusChanged | None] = asyncio.Queue(maxsize=size)

    def offer(self, change: SessionStatusChanged) -> bool:
        """Queue ``change``; when full, empty the queue, leave the DROPPED marker and return False."""
        try:
            self.queue.put_nowait(change)
            return True
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(DROPPED)
            return False


def decode_change(fields: dict[bytes, bytes]) -> SessionStatusChanged | None:
    """The event in a stream entry written by FastStream, or None when it is not one."""
    raw = fields.get(b"__data__")
    if raw is None:
        return None
    data, _headers = BinaryMessageFormatV1.parse(raw)
    try:
        return SessionStatusChanged.model_validate_json(data)
    except ValidationError:
        return None


class StatusFanout:
    """Reads ``session.status_changed`` from where the stream ended at start-up and serves in-process listeners."""

    def __init__(self, redis: Redis, queue_size: int, block_ms: int = 1000) -> None:
        self._redis = redis
        self._queue_size = queue_size
        self._block_ms = block_ms
        self._listeners: dict[str, set[Listener]] = defaultdict(set)
        self._stopping = asyncio.Event()

    @contextmanager
    def listen(self, session_id: str) -> Iterator[Listener]:
        """Register a listener for one session for the duration of the ``with`` block."""
        listener = Listener(self._queue_size)
        self._listeners[session_id].add(listener)
        try:
            yield listener
        finally:
            listeners = self._listeners.get(session_id)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self._listeners[session_id]

    def listener_count(self, session_id: str) -> int:
        """How many clients listen to ``session_id`` here."""
        return len(self._listeners.get(session_id, ()))

    def listening_sessions(self) -> int:
        """How many sessions have a listener here (0 once every SSE client has gone)."""
        return len(self._listeners)

    def deliver(self, change: SessionStatusChanged) -> None:
        """Hand one change to every listener of its session; drop those that cannot keep up."""
        for listener in list(self._listeners.get(change.session_id, ())):
            if not listener.offer(change):
                log.warning("sse_listener_dropped", session_id=change.session_id)
                self._listeners[change.session_id].discard(listener)

    async def start_id(self) -> str:
        """The id of the stream's last entry (so nothing after start-up is missed), or 0-0 when it is empty."""
        last: Any = await self._redis.xrevrange(SESSION_STATUS_CHANGED, count=1)
        return _text(last[0][0]) if last else "0-0"

    def stop(self) -> None:
        """End :meth:`run` after its current read (within ``block_ms``), even if its cancellation is lost."""
        self._stopping.set()

    async def run(self, last_id: str, retry_s: float = 1.0) -> None:
        """Read after ``last_id`` and deliver until cancelled or :meth:`stop`; a Redis error is logged and the read
        resumes. Why both: Python 3.11's ``asyncio.wait_for``, which redis-py sends every command through, drops a
        cancellation that arrives as the command completes (CPython gh-86296); the loop would read on, past the
        API's shutdown and the close of its Redis client, until the event loop closed under it."""
        while not self._stopping.is_set():
            try:
                streams: dict[Any, Any] = {SESSION_STATUS_CHANGED: last_id}
                answer: Any = await self._redis.xread(streams, block=self._block_ms, count=500)
            except RedisError as exc:
                if self._stopping.is_set():
                    return  # the client was closed under a read that outlived its cancellation
                log.warning("status_fanout_read_failed", error=str(exc), retry_in_s=retry_s)
                await asyncio.sleep(retry_s)
                continue
            for _stream, entries in answer or ():
                for entry_id, fields in entries:
                    last_id = _text(entry_id)
                    change = decode_change(fields)
                    if change is not None:
                        self.deliver(change)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
