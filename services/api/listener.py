"""The API's listening socket, read by the event loop itself: every connection waiting to be accepted is accepted
in one turn of the loop, not one per turn.

uvloop's libuv (1.52) accepts one connection per loop iteration. Saturated, the API's loop turns every ~10 ms, so
new connections were accepted at ~100/s: at 2x capacity, the 1,024 connections a client opened in its first second
waited up to 10 s in the kernel's accept queue (``ss -ltn`` Recv-Q 962), and every request with a latency over 1 s
was the first on one of them (its 503 or 202 written after the accept, at once). :class:`ApiServer` listens with
:class:`PendingAcceptor` instead: a reader on the socket that accepts all that wait (at most ``backlog``) and hands
each to the loop (``connect_accepted_socket``), so a request on a new connection meets the in-flight cap within one
turn of the loop, as one on an open connection does.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

import structlog
import uvicorn

from services.runtime.heap import freeze_start_up_heap

log = logging.getLogger("uvicorn.error")

RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
RESOURCE_PAUSE_S = 1.0  # out of file descriptors: stop accepting for a moment (as asyncio does), not spin


class PendingAcceptor:
    """Accepts every pending connection of ``sock`` each time it is readable; an ``asyncio.Server`` to uvicorn."""

    def __init__(self, sock: socket.socket, server: uvicorn.Server, backlog: int) -> None:
        self.sockets = [sock]
        self._sock = sock
        self._server = server
        self._backlog = backlog
        self._loop = asyncio.get_running_loop()
        self._connecting: set[asyncio.Task[object]] = set()
        sock.listen(backlog)
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._accept_pending)

    def _accept_pending(self) -> None:
        for _ in range(self._backlog):
            try:
                conn, _address = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # none left
            except ConnectionAbortedError:
                continue  # the client gave up while queued
            except OSError as exc:
                if exc.errno not in RESOURCE_ERRORS:
                    raise
                log.error("accepting connections paused for %s s: %s", RESOURCE_PAUSE_S, exc)
                self._loop.remove_reader(self._sock.fileno())
                self._loop.call_later(RESOURCE_PAUSE_S, self._resume)
                return
            conn.setblocking(False)
            task = self._loop.create_task(self._loop.connect_accepted_socket(self._protocol, conn))
            self._connecting.add(task)
            task.add_done_callback(self._connected)

    def _protocol(self) -> asyncio.Protocol:
        config, server = self._server.config, self._server
        protocol: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=server.server_state, app_state=server.lifespan.state
        )
        return protocol

    def _connected(self, task: asyncio.Task[object]) -> None:
        self._connecting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.info("a connection closed as it was accepted: %r", task.exception())

    def _resume(self) -> None:
        if self._sock.fileno() >= 0:
            self._loop.add_reader(self._sock.fileno(), self._accept_pending)

    def close(self) -> None:
        """Stop accepting: the socket is closed (open connections are uvicorn's to shut down)."""
        if self._sock.fileno() >= 0:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()

    async def wait_closed(self) -> None:
        """Nothing to wait for once closed (asyncio.Server's interface)."""


class ApiServer(uvicorn.Server):
    """uvicorn's server listening on a host and port through :class:`PendingAcceptor` (sockets, fd, uds: uvicorn's).

    ``freeze_heap``: once started, the start-up heap leaves the collector's view (:mod:`services.runtime.heap`); the
    process's entrypoint asks for it, a test serving in its own process does not."""

    def __init__(self, config: uvicorn.Config, *, freeze_heap: bool = False) -> None:
        super().__init__(config)
        self.freeze_heap = freeze_heap

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start the lifespan as uvicorn does, then listen with every pending connection accepted per loop turn."""
        config = self.config
        if sockets is not None or config.fd is not None or config.uds is not None:
            await super().startup(sockets)
        else:
            await super().startup(sockets=[])  # the lifespan (exits on its failure), no listener yet
            sock = config.bind_socket()  # uvicorn's: SO_REUSEADDR, bound, "Uvicorn running on ..." logged
            self.servers = [PendingAcceptor(sock, self, config.backlog)]  # type: ignore[list-item]
        if self.freeze_heap and not self.should_exit:
            structlog.get_logger(__name__).info("start_up_heap_frozen", objects=freeze_start_up_heap())
