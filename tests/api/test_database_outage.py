"""PostgreSQL becomes unreachable: session requests keep being accepted, reads answer a clear 503.

The API reaches the real PostgreSQL through a TCP proxy the test cuts: open connections drop and new ones are
refused, as when the server goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from services.api.admin import create_key
from services.api.app import create_app
from services.api.settings import ApiSettings
from tests.api.conftest import http_client, new_flow

TTL_S = 0.2
POOL_TIMEOUT_S = 0.5


class CuttableProxy:
    """Forwards TCP connections to ``host:port`` until ``cut``: then drops them all and refuses new ones."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Listen on a free local port and return it."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()

    async def cut(self) -> None:
        """Stop listening (new connections are refused) and reset every open connection."""
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)


@contextlib.asynccontextmanager
async def proxied(database_url: str) -> AsyncIterator[tuple[CuttableProxy, str]]:
    """A proxy to the test database and the URL that goes through it."""
    parts = urlsplit(database_url)
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    port = await proxy.start()
    netloc = f"{parts.username}@127.0.0.1:{port}" if parts.username else f"127.0.0.1:{port}"
    try:
        yield proxy, parts._replace(netloc=netloc).geturl()
    finally:
        await proxy.cut()


async def test_sessions_are_accepted_while_postgres_is_unreachable(api_settings: ApiSettings) -> None:
    key, _org = await create_key(api_settings.database_url, f"outage-{uuid.uuid4().hex[:8]}")
    async with proxied(api_settings.database_url) as (proxy, url):
        settings = api_settings.model_copy(
            update={
                "database_url": url,
                "flow_cache_ttl_s": TTL_S,
                "auth_cache_ttl_s": TTL_S,
                "cache_stale_max_s": 60.0,
                "db_pool_timeout_s": POOL_TIMEOUT_S,
            }
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app), http_client(app, key) as client:
            flow_id, never_requested = await new_flow(client), await new_flow(client)
            first = await client.post(f"/api/flows/{flow_id}/sessions")  # reads the key and the flow: now cached
            assert first.status_code == 202, first.text

            await proxy.cut()
            await asyncio.sleep(TTL_S * 1.5)  # let both cache entries expire: their refresh now needs the database

            answers, took = [], []
            for _ in range(10):
                started = time.monotonic()
                answers.append(await client.post(f"/api/flows/{flow_id}/sessions"))
                took.append(time.monotonic() - started)
            assert [a.status_code for a in answers] == [202] * 10, answers[-1].text
            assert len({a.json()["sessionId"] for a in answers}) == 10
            # Only the first request waited for the failing lookups (key, flow); the others answered at once while
            # the lookups were retried in the background.
            assert max(took[1:]) < POOL_TIMEOUT_S, took
            await asyncio.sleep(TTL_S * 1.5)  # and another TTL later: still answered at once, still accepted
            started = time.monotonic()
            assert (await client.post(f"/api/flows/{flow_id}/sessions")).status_code == 202
            assert time.monotonic() - started < POOL_TIMEOUT_S

            # What was never read before cannot be served, and a session's status lives in the database: 503s.
            for response in (
                await client.post(f"/api/flows/{never_requested}/sessions"),
                await client.get(f"/api/sessions/{first.json()['sessionId']}"),
            ):
                assert response.status_code == 503, response.text
                assert response.json()["error"] == "the database is unavailable; retry shortly"
                assert response.headers["retry-after"] == "1"
