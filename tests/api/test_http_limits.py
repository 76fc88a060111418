"""Slow and oversized clients against the API served as in production: a request head and body each have a deadline,
a head has a size limit, and connections have a cap (uvicorn alone waits for a head or a body forever)."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from fastapi import FastAPI

from services.api.settings import ApiSettings
from tests.api.served import new_org_key, response_of, serve
from tests.polling import wait_until

SHORT = {"head_timeout_s": 0.5, "body_timeout_s": 0.5}


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def test_a_connection_that_sends_no_head_in_time_is_closed(api_app: FastAPI, api_settings: ApiSettings) -> None:
    async with serve(api_settings, **SHORT) as served:
        silent_reader, _silent = await _connect(served.port)
        reader, writer = await _connect(served.port)
        started = time.monotonic()
        for byte in b"GET /healthz HTTP/1.1\r\nHost: api.test\r\nX-Slow: ":  # slowloris: a byte now and then
            writer.write(bytes([byte]))
            await writer.drain()
            if reader.at_eof():
                break
            await asyncio.sleep(0.05)
        async with asyncio.timeout(5):
            assert await reader.read() == b"", "the trickled head got an answer"
            assert await silent_reader.read() == b""
        assert time.monotonic() - started < 4, "closed about head_timeout_s after the connection opened"


async def test_a_keep_alive_connection_is_timed_again_for_its_next_head(
    api_app: FastAPI, api_settings: ApiSettings
) -> None:
    async with serve(api_settings, **SHORT) as served:
        reader, writer = await _connect(served.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: api.test\r\n\r\n")
        async with asyncio.timeout(5):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        writer.write(b"GET /healthz HTTP/1.1\r\n")  # the next request starts, and its head never ends
        async with asyncio.timeout(5):
            while not reader.at_eof():  # the first answer's body, then the close
                await reader.read(1024)


async def test_an_oversized_head_gets_431(api_app: FastAPI, api_settings: ApiSettings) -> None:
    async with serve(api_settings, max_head_bytes=8192) as served:
        reader, writer = await _connect(served.port)
        pads = [b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(20)]
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: api.test\r\n" + b"".join(pads) + b"\r\n")
        status, text = await response_of(reader, timeout_s=5)
        assert status == 431
        assert "at most 8192 bytes" in text

        reader, writer = await _connect(served.port)  # a head under the limit is served
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n" + b"".join(pads[:6]) + b"\r\n")
        status, _text = await response_of(reader, timeout_s=5)
        assert status == 200


async def test_a_body_not_sent_in_time_gets_408(api_app: FastAPI, api_settings: ApiSettings, database_url: str) -> None:
    async with serve(api_settings, **SHORT) as served:
        key = await new_org_key(database_url)
        reader, writer = await _connect(served.port)
        writer.write(
            b"POST /api/flows HTTP/1.1\r\nHost: api.test\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {key}\r\nContent-Length: 100\r\n\r\n".encode()
            + b'{"name": "sl'  # and the rest never comes
        )
        status, text = await response_of(reader, timeout_s=5)
        assert status == 408
        assert "not received within 0.5 s" in text
        assert "connection: close" in text.lower()


async def test_connections_over_the_cap_get_503(api_app: FastAPI, api_settings: ApiSettings) -> None:
    async with serve(api_settings, max_connections=16) as served:
        held = [await _connect(served.port) for _ in range(16)]
        reader, writer = await _connect(served.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: api.test\r\n\r\n")
        status, _text = await response_of(reader, timeout_s=5)
        assert status == 503
        for _reader, held_writer in held:
            held_writer.close()


async def test_data_a_client_never_acknowledges_is_bounded(api_app: FastAPI, api_settings: ApiSettings) -> None:
    """A client that vanished without a FIN or reset is noticed when the heartbeat sent to it stays unacknowledged
    for DEAD_CLIENT_TIMEOUT_S (TCP_USER_TIMEOUT), not after the kernel's ~15 min of retransmissions."""
    if not hasattr(socket, "TCP_USER_TIMEOUT"):
        pytest.skip("TCP_USER_TIMEOUT is Linux only")
    async with serve(api_settings, dead_client_timeout_s=7.5) as served:
        _reader, writer = await _connect(served.port)
        await wait_until(lambda: served.server.server_state.connections, deadline_s=5, what="the connection accepted")
        for connection in served.server.server_state.connections:
            sock = connection.transport.get_extra_info("socket")  # type: ignore[attr-defined]
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 7500
        writer.close()
