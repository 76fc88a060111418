"""The in-flight cap (``MAX_REQUESTS_IN_FLIGHT``) and event-loop lag shedding: a request the process cannot serve
soon is answered ``503`` with ``Retry-After`` at once, before it reaches the app, instead of queueing for seconds.

A count alone cannot keep refusals fast: an event loop saturates its core with far fewer requests in flight than
any cap that still serves a burst, and once it is saturated new requests wait unread in socket buffers where no
count sees them (and new connections in the accept queue: :mod:`services.api.listener`). What their wait shows up
as is the loop's lag: how late a timer fires. So past half the cap a request is refused once the loop has run over
``MAX_LAG_S`` late for ``SUSTAINED_S`` (a burst drained sooner is served) *while busy with its own work*: the
admitted work then leaves the loop the time to read and refuse the rest at once. The loop is busy when its thread
ran on a CPU for at least ``BUSY_SHARE`` of the time (``time.thread_time``): a loop late because other processes
hold the CPUs is not overloaded (the benchmark's end-to-end phase, at a sixth of the API's capacity, was refused
16%) and is served, the count still bounding it. Below half the cap (64 by default: the closed-loop benchmark's
clients) requests are always served, and an SSE stream's open and an agent's flow init only count: they finish
sessions already accepted (a burst's agents refused flow init five times failed their sessions).

A request holds a slot from its head until its answer starts: an SSE stream gives its slot back once it is open
(its own cap is ``MAX_SSE_STREAMS_PER_ORG``). Probes and ``/metrics`` are never counted nor refused, so a loaded
replica is not restarted for failing liveness, and its overload stays visible. Counted per process, across
connections, by :class:`services.api.serving.BoundedHeadProtocol`, which writes the refusal's bytes itself. An
admitted request begins when :class:`services.api.start_pacing.StartPacer` lets it: a few per loop turn, so the turns
stay short and a refusal is written within milliseconds even with the cap's worth of requests admitted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.metrics import OVERLOAD_REFUSALS, REQUESTS_IN_FLIGHT
from services.api.start_pacing import StartPacer

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
RETRY_AFTER_S = 1  # overload passes in moments: a client retries soon, spread by its own backoff
MAX_LAG_S = 0.005  # a refusal must leave within 10 ms: the loop may be at most this far behind to admit more
PROBE_INTERVAL_S = 0.005  # how often the loop's lag is sampled (200 timer callbacks a second)
STREAM_SUFFIX = "/events"  # an SSE stream's open is cheap and capped per org: the lag does not refuse it
INTERNAL_PREFIX = "/internal/"  # an agent's flow init completes a session already accepted: only the count refuses it
SUSTAINED_S = 0.1  # lag that lasts this long is overload, not a burst being drained
BUSY_SHARE = 0.5  # late with the loop's thread on a CPU at least this share of the time: its own work is the cause


def _finishes_accepted_work(path: str) -> bool:
    """An SSE stream's open or an agent's flow init: work for a session already accepted, refused only by the count
    (refusing it under lag would fail sessions the API took, not shed new ones)."""
    return path.endswith(STREAM_SUFFIX) or path.startswith(INTERNAL_PREFIX)


class LoopLag:
    """How long the event loop has been running over ``MAX_LAG_S`` late (a probe timer's lateness) while busy with
    its own work, without a break.

    A burst the loop drains within ``SUSTAINED_S`` is not overload (CoDel's reasoning): only lag that lasts is. Lag
    while the loop's thread got under ``BUSY_SHARE`` of a CPU (``cpu_clock``: its CPU seconds) is other processes'."""

    def __init__(self, cpu_clock: Callable[[], float] = time.thread_time) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.cpu_clock = cpu_clock  # called on the loop's thread: the loop's own CPU time
        self._due = 0.0
        self._late_since: float | None = None
        self._probed_at = 0.0
        self._cpu_at = 0.0

    def late_for_s(self) -> float:
        """For how long the loop has been late and busy; the first call starts probing on the running loop."""
        loop = self.loop
        if loop is None:
            self.loop = loop = asyncio.get_running_loop()
            self._probed_at, self._cpu_at = loop.time(), self.cpu_clock()
            self._due = self._probed_at + PROBE_INTERVAL_S
            loop.call_at(self._due, self._probe)
            return 0.0
        now = loop.time()
        since = self._late_since
        if since is None:
            if now - self._due <= MAX_LAG_S or not self._busy(now):
                return 0.0
            since = self._due + MAX_LAG_S  # the probe is overdue now: late since it should have run
        return now - since

    def _busy(self, now: float) -> bool:
        """Whether the loop's thread ran for at least ``BUSY_SHARE`` of the time since the last probe."""
        return self.cpu_clock() - self._cpu_at >= BUSY_SHARE * (now - self._probed_at)

    def _probe(self) -> None:
        loop = self.loop
        assert loop is not None
        now = loop.time()
        if now - self._due > MAX_LAG_S and self._busy(now):
            if self._late_since is None:
                self._late_since = self._due + MAX_LAG_S
        else:
            self._late_since = None
        self._probed_at, self._cpu_at = now, self.cpu_clock()
        self._due = now + PROBE_INTERVAL_S
        loop.call_at(self._due, self._probe)


class InFlightCap:
    """Counts the requests this process is serving; hands out a slot for each new one, or nothing (refuse it)."""

    def __init__(self, limit: int, sustained_s: float = SUSTAINED_S) -> None:
        self.limit = limit
        self.always_served = max(1, limit // 2)  # served however late the loop runs: a lagging process progresses
        self.sustained_s = sustained_s
        self.lag = LoopLag()
        self.pacer = StartPacer()  # admitted requests begin a few per loop turn: the loop reads (and refuses) often
        self.in_flight = 0
        error = f"the API is overloaded ({limit} requests in flight at most); retry after {RETRY_AFTER_S} s"
        body = json.dumps({"error": error}).encode()
        self.refusal = (  # the whole answer, built once: refusing allocates nothing and starts no task
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\nretry-after: {RETRY_AFTER_S}\r\n\r\n".encode()
            + body
        )
        REQUESTS_IN_FLIGHT.set_function(lambda: self.in_flight)

    def admit(self, scope: Scope, app: ASGIApp) -> ASGIApp | None:
        """What serves this request: ``app`` holding a slot, ``app`` alone (exempt), or None: answer ``refusal``."""
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            return app
        late_s = self.lag.late_for_s()
        in_flight = self.in_flight
        lagging = in_flight >= self.always_served and late_s > self.sustained_s
        if in_flight >= self.limit or (lagging and not _finishes_accepted_work(scope["path"])):
            OVERLOAD_REFUSALS.inc()
            return None
        self.in_flight += 1  # taken now, as the head arrives: requests parsed together cannot all slip in
        return self._holding(app)

    def _holding(self, app: ASGIApp) -> ASGIApp:
        async def holding(scope: Scope, receive: Receive, send: Send) -> None:
            held = True

            async def sending(message: Message) -> None:
                nonlocal held
                if held and message["type"] == "http.response.start":
                    held = False  # answered (a stream keeps going, without its slot)
                    self.in_flight -= 1
                await send(message)

            try:
                await self.pacer.start()
                await app(scope, receive, sending)
            finally:
                if held:  # no answer started: the client left, or the app failed
                    self.in_flight -= 1

        return holding
