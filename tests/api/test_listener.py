"""The API's listener accepts every connection waiting in the kernel's queue in one turn of the event loop.

Under uvloop (as the API runs) uvicorn's own listener accepts one connection per turn: a saturated loop then takes
seconds to reach a connection that is queued behind hundreds of others. Counted in loop turns, not timed."""

from __future__ import annotations

import asyncio
import gc
import socket

import uvicorn
import uvloop
from starlette.types import Receive, Scope, Send

from services.api.listener import ApiServer
from tests.polling import wait_until

CLIENTS = 64
MAX_TURNS = 10_000  # a bound on the wait: the answer is expected within a handful


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def _turns_until_all_answered(server: uvicorn.Server) -> int:
    """Connect ``CLIENTS`` sockets while the loop is held (they all queue), send a request on each, then count the
    loop's turns until every one is answered."""
    serving = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started, deadline_s=30, what="the server started")
        port = server.servers[0].sockets[0].getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(CLIENTS)]  # the loop is held
        for client in clients:
            client.sendall(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
            client.setblocking(False)
        waiting, turns = set(clients), 0
        while waiting and turns < MAX_TURNS:
            await asyncio.sleep(0)  # one turn of the loop
            turns += 1
            for client in list(waiting):
                try:
                    if client.recv(1024).startswith(b"HTTP/1.1 200"):
                        waiting.discard(client)
                except BlockingIOError:
                    pass
        for client in clients:
            client.close()
        assert not waiting, f"{len(waiting)} of {CLIENTS} requests unanswered after {turns} turns"
        return turns
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=15)


def _config() -> uvicorn.Config:
    return uvicorn.Config(_ok, host="127.0.0.1", port=0, lifespan="off", log_level="warning")


def test_connections_queued_together_are_served_within_a_few_turns_of_the_loop() -> None:
    turns = uvloop.run(_turns_until_all_answered(ApiServer(_config())))
    assert turns < CLIENTS // 4, f"{turns} turns for {CLIENTS} queued connections: accepted one by one"


async def test_the_listener_serves_on_asyncio_loops_too() -> None:
    turns = await _turns_until_all_answered(ApiServer(_config()))  # pytest-asyncio's loop: asyncio's own
    assert turns < CLIENTS // 4


async def test_the_entrypoints_server_freezes_the_start_up_heap_once_started() -> None:
    """``python -m services.api`` asks for it (``freeze_heap=True``): the collector's full passes then skip what
    start-up built (services.runtime.heap); a server built without it, as tests build theirs, leaves the heap be."""
    assert gc.get_freeze_count() == 0
    try:
        await _turns_until_all_answered(ApiServer(_config()))
        assert gc.get_freeze_count() == 0
        await _turns_until_all_answered(ApiServer(_config(), freeze_heap=True))
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()  # the rest of the test session's heap stays collectable
