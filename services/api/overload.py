"""The in-flight cap (``MAX_REQUESTS_IN_FLIGHT``): beyond it a request is answered ``503`` with ``Retry-After`` at
once, before it reaches the app, instead of queueing in the event loop for seconds.

A request holds a slot from its head until its answer starts: an SSE stream gives its slot back once it is open
(its own cap is ``MAX_SSE_STREAMS_PER_ORG``). Probes and ``/metrics`` are never counted nor refused, so a loaded
replica is not restarted for failing liveness, and its overload stays visible. Counted per process, across
connections, by :class:`services.api.serving.BoundedHeadProtocol`.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.metrics import OVERLOAD_REFUSALS, REQUESTS_IN_FLIGHT

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
RETRY_AFTER_S = 1  # overload passes in moments: a client retries soon, spread by its own backoff


class InFlightCap:
    """Counts the requests this process is serving; hands out a slot, or the refusal, for each new one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        error = f"the API is overloaded ({limit} requests in flight); retry after {RETRY_AFTER_S} s"
        body = json.dumps({"error": error}).encode()
        self._refusal_start: Message = {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_S).encode()),
            ],
        }
        self._refusal_body: Message = {"type": "http.response.body", "body": body}
        REQUESTS_IN_FLIGHT.set_function(lambda: self.in_flight)

    def admit(self, scope: Scope, app: ASGIApp) -> ASGIApp:
        """What serves this request: ``app`` holding a slot, ``app`` alone (exempt), or the refusal (cap reached)."""
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            return app
        if self.in_flight >= self.limit:
            OVERLOAD_REFUSALS.inc()
            return self._refuse
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
                await app(scope, receive, sending)
            finally:
                if held:  # no answer started: the client left, or the app failed
                    self.in_flight -= 1

        return holding

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(self._refusal_start)
        await send(self._refusal_body)
