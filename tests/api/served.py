"""The API served by uvicorn as ``python -m services.api`` serves it (same limits), and raw-socket clients of it.

For what the in-process ASGI client cannot show: connections, request heads, clients that vanish mid-stream.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI

from services.api.admin import KeyRequest, create_key
from services.api.app import create_app
from services.api.listener import ApiServer
from services.api.scopes import ALL_SCOPES
from services.api.serving import server_config
from services.api.settings import ApiSettings
from tests.api.conftest import http_client, new_flow
from tests.polling import wait_until


@dataclass
class Served:
    """A running API: the app (its state is inspected by tests), its uvicorn server and port."""

    app: FastAPI
    server: uvicorn.Server
    port: int


@asynccontextmanager
async def serve(settings: ApiSettings, **changes: Any) -> AsyncIterator[Served]:
    """Run the API with ``settings`` (and ``changes`` to them) on a free loopback port until the block ends."""
    settings = settings.model_copy(update=changes)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        config = server_config(
            app, settings, host="127.0.0.1", port=0, lifespan="off", log_level="warning", timeout_graceful_shutdown=2
        )
        server = ApiServer(config)
        task = asyncio.create_task(server.serve())
        try:
            await wait_until(lambda: server.started or task.done(), deadline_s=30, what="the API server started")
            assert not task.done(), "the API server stopped during start-up"
            yield Served(app, server, server.servers[0].sockets[0].getsockname()[1])
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, timeout=15)


async def new_org_key(database_url: str) -> str:
    """A secret key, with every scope, of a fresh organisation."""
    key, _org = await create_key(database_url, f"org-{uuid.uuid4().hex[:8]}", request=KeyRequest(scopes=ALL_SCOPES))
    return key


async def new_sessions(app: FastAPI, key: str, count: int) -> list[str]:
    """Request ``count`` sessions of a new flow (they stay pending: nothing dispatches them here)."""
    async with http_client(app, key) as client:
        flow_id = await new_flow(client)
        ids = []
        for _ in range(count):
            response = await client.post(f"/api/flows/{flow_id}/sessions")
            assert response.status_code == 202, response.text
            ids.append(response.json()["sessionId"])
    return ids


@dataclass
class RawStream:
    """One client connection holding a request's answer: its status, head and the first event when it is a stream."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int
    head: str

    def vanish(self) -> None:
        """Close abruptly, as a client whose process died: a TCP reset, no orderly FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def close(self) -> None:
        """Close as a polite client does."""
        self.writer.close()
        await self.writer.wait_closed()


async def open_events(port: int, session_id: str, key: str, timeout_s: float = 10) -> RawStream:
    """``GET /api/sessions/{id}/events`` over a raw socket; on 200 it returns once the first status event arrived."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"GET /api/sessions/{session_id}/events HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {key}\r\n"
    writer.write(head.encode() + b"\r\n")
    async with asyncio.timeout(timeout_s):
        answer = (await reader.readuntil(b"\r\n\r\n")).decode()
        status = int(answer.split(" ", 2)[1])
        if status == 200:
            await reader.readuntil(b"event: status")
    return RawStream(reader, writer, status, answer)


async def response_of(reader: asyncio.StreamReader, timeout_s: float) -> tuple[int, str]:
    """Read one whole (non-streaming) response: its status and the rest (headers and body) as text."""
    async with asyncio.timeout(timeout_s):
        raw = await reader.read()  # our refusals close the connection
    text = raw.decode(errors="replace")
    return int(text.split(" ", 2)[1]), text
