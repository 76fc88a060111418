"""The open loop at a lower cost per request than aiohttp's: prebuilt requests on kept-alive connections, answers read
with httptools (llhttp, the parser uvicorn serves with), one callback per answer instead of a task and a client stack.

Why (docs/performance.md): twice the API's capacity is ~6,400 requests/s, and aiohttp's client spends ~95 µs of CPU on
each, 60% of a core beside the API's 100% and Redis's on a 2-core machine. The generator's own loop then ran late
(p99 7 ms) and its lateness is in every latency it reports. Its semantics are bench.loadgen's open loop, unchanged:
request i is due at ``t0 + i / rate`` whatever the answers, its latency counts from then (or from its send, when a timer
woke early), at most ``max_in_flight`` requests are outstanding (one per connection: a request past the bound waits
for a free connection, counted in ``slot_waits``, its wait in its latency), connections are warmed before the clock
starts (a ``GET`` of the warm path each), and a client timeout or a lost connection is an answer of its own
(``TimeoutError``, ``ServerDisconnectedError``, the connect error's name). It sends what aiohttp sends for a bodyless
POST, and closes a connection idle for ``IDLE_KEEP_S`` before the server's keep-alive would. SSE following and
retries after a 503 stay aiohttp's (bench.loadgen).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from typing import cast
from urllib.parse import urlsplit

import httptools

from bench.load_spec import IDLE_KEEP_S, LoadResult, LoadSpec
from bench.schedule import Schedule

SWEEP_S = 0.05  # how often outstanding requests are checked against the client timeout
USER_AGENT = "agentready-bench"
LOST_TRACK_S = 10.0  # no answer for the client timeout and this long: the loop lost track of its requests


def request_bytes(spec: LoadSpec, method: str, path: str) -> bytes:
    """One HTTP/1.1 request without a body, with the headers aiohttp sends and ``spec.headers``."""
    host = urlsplit(spec.base_url).netloc
    headers = {
        "Host": host,
        **spec.headers,
        "Accept": "*/*",
        "Accept-Encoding": "gzip, deflate",
        "User-Agent": USER_AGENT,
        "Content-Length": "0",
    }
    if method == "POST":
        headers["Content-Type"] = "application/octet-stream"
    lines = [f"{method} {path} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Connection(asyncio.Protocol):
    """One kept-alive connection: at most one request on it at a time."""

    def __init__(self, loop: LeanOpenLoop) -> None:
        self.owner = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.body = bytearray()
        self.scheduled: float | None = None  # the request on it: when it was due (None: idle)
        self.sent_at = 0.0
        self.warming = False  # its request is the warm-up GET: not a result
        self.idle_since = 0.0  # when it last went idle

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's TCPTransport is not asyncio's class

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.owner.failed(self, "ClientResponseError")

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.lost(self)

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        body, self.body = bytes(self.body), bytearray()
        self.owner.answered(self, str(self.parser.get_status_code()), body, self.parser.should_keep_alive())

    def send(self, request: bytes, scheduled: float) -> None:
        assert self.transport is not None
        self.scheduled, self.sent_at = scheduled, time.perf_counter()
        self.transport.write(request)

    def close(self, *, graceful: bool = False) -> None:
        """Drop the connection (RST), or close it ``graceful``-ly (FIN: an idle one); lost() frees its slot."""
        if self.transport is None or self.transport.is_closing():
            return
        if graceful:
            self.transport.close()
        else:
            self.transport.abort()


class LeanOpenLoop:
    """Runs one open-loop spec; :meth:`run` fills and returns a LoadResult (CPU and loop lag are the caller's)."""

    def __init__(self, spec: LoadSpec, warm_path: str) -> None:
        self.spec = spec
        parts = urlsplit(spec.base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"the lean open loop speaks plain HTTP: {spec.base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.request = request_bytes(spec, "POST", spec.path)
        self.warm_request = request_bytes(spec, "GET", warm_path)
        self.result = LoadResult()
        self.idle: deque[_Connection] = deque()
        self.busy: set[_Connection] = set()
        self.waiting: deque[float] = deque()  # due times of requests waiting for a connection
        self.connections = 0  # open or opening: at most max_in_flight
        self.outstanding = 0  # requests not yet answered
        self.sending_done = False
        self.finished: asyncio.Future[None] | None = None
        self.warmed: asyncio.Future[None] | None = None
        self.warming = 0
        self.sweeper: asyncio.TimerHandle | None = None

    async def run(self, warm: int) -> LoadResult:
        """Warm ``warm`` connections, then send at ``spec.rate`` for ``spec.duration_s`` and wait for every answer."""
        loop = asyncio.get_running_loop()
        self.finished = loop.create_future()
        await self._warm(min(warm, self.spec.max_in_flight))
        self.sweeper = loop.call_later(SWEEP_S, self._sweep)
        try:
            schedule = Schedule(self.spec.rate, self.spec.duration_s)
            async for scheduled in schedule.due_times():
                self.submit(scheduled)
            self.result.sending_s = schedule.elapsed_s()
            self.sending_done = True
            await self._answers(self.finished)
        finally:
            if self.sweeper is not None:
                self.sweeper.cancel()
            for connection in [*self.idle, *self.busy]:
                connection.close()
        return self.result

    async def _answers(self, finished: asyncio.Future[None]) -> None:
        """Until every request is answered. A request on a connection is answered, fails or times out within
        ``timeout_s``, so no answer for longer than that is the generator's own bug: raise instead of hanging."""
        while self.outstanding:
            answered = len(self.result.latencies_ms)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(finished), self.spec.timeout_s + LOST_TRACK_S)
            if self.outstanding and len(self.result.latencies_ms) == answered:
                raise RuntimeError(f"the lean open loop lost track of {self.outstanding} requests")

    async def _warm(self, count: int) -> None:
        """``count`` connections, each with one answered GET of the warm path, before the clock starts."""
        if count <= 0:
            return
        self.warmed = asyncio.get_running_loop().create_future()
        self.warming = count
        for _ in range(count):
            self._connect(None)
        await asyncio.wait([self.warmed], timeout=self.spec.timeout_s)  # one not warmed by then is warmed in the phase

    def submit(self, scheduled: float) -> None:
        """Send the request due at ``scheduled`` now (or when a connection frees). Its latency counts from then, or
        from now when a timer woke early: an early send must not look faster."""
        scheduled = min(scheduled, time.perf_counter())
        self.outstanding += 1
        if self.idle:
            self._send(self.idle.pop(), scheduled)
        elif self.connections < self.spec.max_in_flight:
            self._connect(scheduled)
        else:
            self.result.slot_waits += 1
            self.waiting.append(scheduled)

    def _send(self, connection: _Connection, scheduled: float) -> None:
        lag_ms = (time.perf_counter() - scheduled) * 1000
        if lag_ms > self.result.max_start_lag_ms:
            self.result.max_start_lag_ms = lag_ms
        self.busy.add(connection)
        connection.send(self.request, scheduled)

    def _connect(self, scheduled: float | None) -> None:
        """A new connection for the request due at ``scheduled`` (None: a warm-up connection)."""
        self.connections += 1
        connection = _Connection(self)
        task = asyncio.ensure_future(self._open(connection))
        task.add_done_callback(lambda done: self._opened(connection, done, scheduled))

    async def _open(self, connection: _Connection) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.create_connection(lambda: connection, self.host, self.port), self.spec.timeout_s)

    def _opened(self, connection: _Connection, done: asyncio.Future[None], scheduled: float | None) -> None:
        error = done.exception()
        if error is not None:
            self.connections -= 1
            if scheduled is None:
                self._warm_one_done()
            else:
                self._record(scheduled, type(error).__name__, b"")
                self._next_waiting()
            return
        if scheduled is None:
            connection.warming = True
            self.busy.add(connection)
            connection.send(self.warm_request, time.perf_counter())
        else:
            self._send(connection, scheduled)

    def _warm_one_done(self) -> None:
        self.warming -= 1
        if self.warming == 0 and self.warmed is not None and not self.warmed.done():
            self.warmed.set_result(None)

    def _finish(self, connection: _Connection, status: str, body: bytes) -> None:
        """Take the request off ``connection`` and record how it ended (a warm-up GET only counts as warmed)."""
        scheduled, connection.scheduled = connection.scheduled, None
        self.busy.discard(connection)
        if connection.warming:
            connection.warming = False
            self._warm_one_done()
        elif scheduled is not None:
            self._record(scheduled, status, body)

    def answered(self, connection: _Connection, status: str, body: bytes, keep_alive: bool) -> None:
        """The request on ``connection`` got its answer."""
        self._finish(connection, status, body)
        if not keep_alive:
            connection.close()  # lost() frees its slot
            return
        if self.waiting:
            self._send(connection, self.waiting.popleft())
        else:
            connection.idle_since = time.perf_counter()
            self.idle.append(connection)  # the right end is reused first: the left holds the longest idle

    def failed(self, connection: _Connection, error: str) -> None:
        """The request on ``connection`` failed (an unreadable answer, a timeout): record it, drop the connection."""
        self._finish(connection, error, b"")
        connection.close()

    def lost(self, connection: _Connection) -> None:
        """``connection`` closed (by either side): a request still on it is a ServerDisconnectedError."""
        self.connections -= 1
        self.busy.discard(connection)
        if connection in self.idle:
            self.idle.remove(connection)
        if connection.scheduled is not None:
            self.failed(connection, "ServerDisconnectedError")
        self._next_waiting()

    def _next_waiting(self) -> None:
        if self.waiting and self.connections < self.spec.max_in_flight:
            self._connect(self.waiting.popleft())

    def _record(self, scheduled: float, status: str, body: bytes) -> None:
        latency_ms = (time.perf_counter() - scheduled) * 1000
        result = self.result
        result.latencies_ms.append(latency_ms)
        by_status = result.latencies_by_status.get(status)
        if by_status is None:
            by_status = result.latencies_by_status[status] = []
        by_status.append(latency_ms)
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if status in ("200", "202") and body:
            result.session_ids.append(json.loads(body)["sessionId"])
        self.outstanding -= 1
        if self.outstanding == 0 and self.sending_done and self.finished is not None and not self.finished.done():
            self.finished.set_result(None)

    def _sweep(self) -> None:
        """Every request outstanding longer than the client timeout is a TimeoutError; its connection is dropped. A
        connection idle for ``IDLE_KEEP_S`` is closed."""
        now = time.perf_counter()
        limit = now - self.spec.timeout_s
        for connection in [c for c in self.busy if c.scheduled is not None and c.sent_at < limit]:
            self.failed(connection, "TimeoutError")
        while self.idle and self.idle[0].idle_since < now - IDLE_KEEP_S:
            self.idle.popleft().close(graceful=True)
        self.sweeper = asyncio.get_running_loop().call_later(SWEEP_S, self._sweep)
