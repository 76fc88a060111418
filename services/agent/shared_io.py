"""The worker process's shared clients: one Redis connection pool (the broker) and one keep-alive HTTP client for
flow init, owned by one event loop thread (``agent-io``) and used by every job of the process.

With the thread executor every job runs its own event loop in its own thread, and a Redis or HTTP connection
belongs to the loop that opened it: clients made per job cost a TCP connect, Redis ``HELLO``, an HTTP client and
a close for every session. Jobs hand their calls to the loop that owns the clients instead
(``run_coroutine_threadsafe``) and await the answer in their own loop; cancelling the job's wait cancels the call.
With the process executor a process serves one job, so its clients are closed with that job.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import aiohttp
import structlog

from contracts.events import Event
from services.agent.events import RedisEventPublisher
from services.agent.flow_client import FlowConfig, FlowInitPolicy, HttpFlowInitialiser
from services.agent.metadata import SessionMetadata
from services.runtime import tracing

T = TypeVar("T")
log = structlog.get_logger(__name__)

CLOSE_TIMEOUT_SECONDS = 5.0


class SharedIO:
    """An event loop in a thread of its own, with the process's Redis publisher and HTTP client on it."""

    def __init__(self, redis_url: str, *, api_url: str, http_timeout_s: float, flow_policy: FlowInitPolicy) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="agent-io", daemon=True)
        self._thread.start()
        self._redis = RedisEventPublisher(redis_url)  # connects on first use, inside the io loop
        self._api_url = api_url
        self._http_timeout_s = http_timeout_s
        self._flow_policy = flow_policy
        self._http: aiohttp.ClientSession | None = None  # made inside the io loop, on the first flow init
        self.publisher = SharedPublisher(self)
        self.closed = False

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the io loop and return its result in the caller's loop."""
        if self.closed:
            coro.close()
            raise RuntimeError("the worker's shared clients are closed")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def publish(self, event: Event) -> None:
        """Publish ``event`` (stamped with the caller's trace context first: the io loop has none)."""
        await self.call(self._redis.publish(tracing.stamped(event)))

    async def room_watched(self, room_name: str) -> bool:
        """Whether ``room_name`` has a watcher (see RedisEventPublisher.room_watched)."""
        return await self.call(self._redis.room_watched(room_name))

    async def initialise_flow(self, session: SessionMetadata) -> FlowConfig:
        """Flow init through the shared keep-alive HTTP client (retries bounded by the flow policy)."""
        return await self.call(self._initialise_flow(session))

    async def _initialise_flow(self, session: SessionMetadata) -> FlowConfig:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._http_timeout_s))
        return await HttpFlowInitialiser(self._http, self._api_url, self._flow_policy)(session)

    async def aclose(self) -> None:
        """Close the clients (bounded), stop the io loop and its thread; safe to call more than once."""
        if self.closed:
            return
        try:
            await self.call(self._close_clients())
        except Exception as exc:  # noqa: BLE001 - shutting down: say so, stop the loop regardless
            log.warning("shared_clients_close_failed", error=f"{type(exc).__name__}: {exc}")
        self.closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join, CLOSE_TIMEOUT_SECONDS)
        if not self._thread.is_alive():
            self._loop.close()

    async def _close_clients(self) -> None:
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            if self._http is not None:
                await self._http.close()
            await self._redis.close()


class SharedPublisher:
    """:class:`~services.runtime.publishing.EventPublisher` (and ``room_watched``) of a job, on the shared clients."""

    def __init__(self, io: SharedIO) -> None:
        self._io = io

    async def publish(self, event: Event) -> None:
        """Publish ``event`` through the process's one Redis connection pool."""
        await self._io.publish(event)

    async def room_watched(self, room_name: str) -> bool:
        """Whether ``room_name`` has a watcher."""
        return await self._io.room_watched(room_name)


_lock = threading.Lock()
_shared: dict[tuple[str, str, float, FlowInitPolicy], SharedIO] = {}


def shared_io(redis_url: str, *, api_url: str, http_timeout_s: float, flow_policy: FlowInitPolicy) -> SharedIO:
    """The process's shared clients for these settings, started on first use (job threads ask concurrently)."""
    key = (redis_url, api_url, http_timeout_s, flow_policy)
    with _lock:
        io = _shared.get(key)
        if io is None or io.closed:
            io = _shared[key] = SharedIO(
                redis_url, api_url=api_url, http_timeout_s=http_timeout_s, flow_policy=flow_policy
            )
        return io


async def close_shared_io() -> None:
    """Close every shared client of this process (the worker's shutdown, once its jobs are done)."""
    with _lock:
        open_ios = list(_shared.values())
        _shared.clear()
    for io in open_ios:
        await io.aclose()
