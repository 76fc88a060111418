"""How uvicorn serves the API: its connection cap and keep-alive, and the bounds it lacks on each request's head.

uvicorn (0.54, httptools) waits for a request's line and headers forever and accepts heads of any size (a 2 MB head
was answered 200): a client that trickles a header a byte at a time holds a connection for good (slowloris).
:class:`BoundedHeadProtocol` closes a connection whose head is not complete within ``head_timeout_s`` and answers 431
to a head over ``max_head_bytes``, and bounds how long data sent to a client may stay unacknowledged (a client that
vanished without closing), and it counts the requests in flight across connections: those over
``MAX_REQUESTS_IN_FLIGHT``, or over half of it while the event loop lags, get 503 at once
(:mod:`services.api.overload`). The body's deadline is
:class:`services.api.body_limit.BodyLimitMiddleware`'s.
A reverse proxy in front (nginx ``client_header_timeout``/``client_body_timeout``) remains the first line: it also
bounds connections per client address, which one process cannot see behind the proxy.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.api.overload import InFlightCap
from services.api.settings import ApiSettings

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Scope
    from uvicorn._types import ASGI3Application
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle


class HeadTooLargeError(Exception):
    """Raised inside the parser's callback to stop reading a head over the limit."""


class BoundedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit for every request head."""

    head_timeout_s: float = 10.0
    max_head_bytes: int = 32 * 1024
    dead_client_timeout_s: float = 60.0
    in_flight_cap: InFlightCap | None = None  # one per server: shared by every connection

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._head_too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the first head's clock as the connection opens (uvicorn starts none until a response is sent)."""
        super().connection_made(transport)
        self._bound_unacknowledged_data(transport)
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the head's clock with the connection."""
        self._stop_head_clock()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        """A new request's first byte: count its head from zero, and time it unless the connection's clock runs.

        Between requests uvicorn's keep-alive timer closes an idle connection; this clock starts at the next byte."""
        super().on_message_begin()
        self._head_bytes = 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_too_slow)

    def on_url(self, url: bytes) -> None:
        """Count the request line towards the head's size."""
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count each header towards the head's size."""
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The head arrived in time: stop its clock (the body's deadline is the middleware's)."""
        self._stop_head_clock()
        super().on_headers_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        """Every request's task starts here (uvicorn 0.54; a pipelined one when its turn comes): the in-flight cap
        decides, with nothing of the app run yet, whether it is served or answered 503 at once.

        A refusal is written here, in the parser's callback: no task, no ASGI cycle, no wait for another turn of a
        busy loop. ``app`` is not ``self.app`` when uvicorn answers its own 503 (``MAX_CONNECTIONS``): not counted."""
        cap = self.in_flight_cap
        if cap is not None and app is self.app:
            admitted = cap.admit(cast("Scope", cycle.scope), cast("ASGIApp", app))
            if admitted is None:
                self._refuse(cycle, cap.refusal)
                return
            app = cast("ASGI3Application", admitted)
        super()._start_asgi_task(cycle, app)

    def _refuse(self, cycle: RequestResponseCycle, answer: bytes) -> None:
        """Answer ``answer`` for ``cycle`` as uvicorn ends a response: its body (if any) is skipped by the parser,
        and the connection is kept alive for the next request (or closed, HTTP/1.0 or ``Connection: close``)."""
        cycle.response_complete = True
        self.transport.write(answer)
        if not cycle.keep_alive:
            self.transport.close()
            return
        self.on_response_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn answers a parse error with 400; a head stopped for its size gets 431 instead."""
        if not self._head_too_large:
            super().send_400_response(msg)
            return
        text = f"request head too large: at most {self.max_head_bytes} bytes of request line and headers"
        self.logger.info("answered 431 to the 'invalid' request just logged: %s", text)  # uvicorn's warning precedes
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
            + f"content-length: {len(text)}\r\nconnection: close\r\n\r\n{text}".encode()
        )
        self.transport.close()

    def _bound_unacknowledged_data(self, transport: asyncio.Transport) -> None:
        """A peer that vanished without a FIN or reset is noticed when data sent to it (an SSE heartbeat) stays
        unacknowledged for ``dead_client_timeout_s``, not after the kernel's ~15 min of retransmissions."""
        sock = transport.get_extra_info("socket")
        if sock is None or self.dead_client_timeout_s <= 0 or not hasattr(socket, "TCP_USER_TIMEOUT"):
            return  # not TCP, turned off, or not Linux: the kernel's default applies
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(self.dead_client_timeout_s * 1000))

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head_bytes:
            self._head_too_large = True
            raise HeadTooLargeError  # httptools stops parsing; uvicorn then calls send_400_response

    def _stop_head_clock(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.logger.info("closing a connection whose request head did not arrive within %s s", self.head_timeout_s)
            self.transport.close()


def bounded_protocol(
    head_timeout_s: float,
    max_head_bytes: int,
    dead_client_timeout_s: float = 60.0,
    in_flight_cap: InFlightCap | None = None,
) -> type[BoundedHeadProtocol]:
    """The protocol class with these limits (uvicorn builds one instance per connection from a class)."""
    limits = {
        "head_timeout_s": head_timeout_s,
        "max_head_bytes": max_head_bytes,
        "dead_client_timeout_s": dead_client_timeout_s,
        "in_flight_cap": in_flight_cap,
    }
    return type("BoundedHead", (BoundedHeadProtocol,), limits)


def server_config(app: Any, settings: ApiSettings, **overrides: Any) -> uvicorn.Config:
    """uvicorn's configuration for the API: its address, limits and timeouts from ``settings``."""
    options: dict[str, Any] = {
        "host": settings.api_host,
        "port": settings.api_port,
        "log_level": settings.log_level.lower(),
        "access_log": False,
        "timeout_graceful_shutdown": 10,
        "timeout_keep_alive": settings.keep_alive_s,
        "limit_concurrency": settings.max_connections,  # beyond it: 503 at once, not a slow queue of everyone
        "http": bounded_protocol(
            settings.head_timeout_s,
            settings.max_head_bytes,
            settings.dead_client_timeout_s,
            InFlightCap(settings.max_requests_in_flight),
        ),
    }
    return uvicorn.Config(app, **(options | overrides))
