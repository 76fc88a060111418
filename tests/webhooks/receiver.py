"""A real HTTP webhook receiver for tests: an aiohttp server on a free port, verifying like a customer would.

Each path has a behaviour: ``/ok/...`` answers 204, ``/flaky/{n}/...`` answers 503 to the first ``n`` requests of
each ``webhook-id`` and 204 after, ``/down/...`` answers 500 until :meth:`Receiver.heal`, ``/slow/...`` waits
``slow_s`` before answering. Every request is recorded with its arrival time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()
    answered: int

    @property
    def webhook_id(self) -> str:
        """The ``webhook-id`` header."""
        return self.headers["webhook-id"]


def spec_signature_valid(secret: str, headers: dict[str, str], body: bytes, tolerance_s: float = 300) -> bool:
    """Verify as the Standard Webhooks specification says, written out here (not the sender's code):
    HMAC-SHA256 with the base64-decoded secret over ``{id}.{timestamp}.{body}``, any ``v1,`` signature matching in
    constant time, the timestamp within the tolerance."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance_s:
        return False
    expected = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    for candidate in headers["webhook-signature"].split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(expected, base64.b64decode(signature)):
            return True
    return False


class Receiver:
    """The running server: its base URL, what it received, and switches for its behaviour."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.slow_s = 30.0
        self._healed = asyncio.Event()
        self._seen: Counter[tuple[str, str]] = Counter()  # (path, webhook-id) -> requests
        self.base_url = ""

    def heal(self) -> None:
        """``/down/...`` answers 204 from now on."""
        self._healed.set()

    def to(self, path: str) -> list[Received]:
        """The requests received on ``path``."""
        return [r for r in self.received if r.path == path]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        path = request.path
        self._seen[(path, headers.get("webhook-id", ""))] += 1
        status = 204
        if path.startswith("/flaky/"):
            failures = int(path.split("/")[2])
            status = 503 if self._seen[(path, headers.get("webhook-id", ""))] <= failures else 204
        elif path.startswith("/down/") and not self._healed.is_set():
            status = 500
        elif path.startswith("/slow/"):
            self.received.append(Received(path, headers, body, time.monotonic(), 0))
            await asyncio.sleep(self.slow_s)
            return web.Response(status=204)
        self.received.append(Received(path, headers, body, time.monotonic(), status))
        return web.Response(status=status)

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls) -> AsyncIterator[Receiver]:
        """Serve on 127.0.0.1 and a free port until the block ends."""
        receiver = cls()
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", receiver._handle)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        receiver.base_url = f"http://127.0.0.1:{port}"
        try:
            yield receiver
        finally:
            await runner.cleanup()
