"""The demo's core: create a flow, run N frontends with bounded concurrency, summarise what they saw."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from devstack.demo.frontend import Frontend, SessionResult, run_frontend
from devstack.demo.rooms import Backend, RoomFactory
from devstack.demo.stats import DemoSummary, summarise

DEFAULT_GREETING = "Hello! How can I help you today?"


class DemoSetupError(Exception):
    """The demo could not start (no stack, refused key, flow not created); the message says what to do."""


@dataclass(frozen=True)
class DemoConfig:
    """One demo run: where the API is, how many frontends, how many at once, and the deadlines."""

    api_url: str
    api_key: str | None = None
    sessions: int = 200
    concurrency: int = 50
    ready_timeout_s: float = 30.0
    join_timeout_s: float = 10.0
    sse_grace_s: float = 5.0
    room_backend: Backend = "auto"
    greeting: str = DEFAULT_GREETING
    end_sessions: bool = True


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The API key header, when there is a key."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


async def create_flow(client: httpx.AsyncClient, headers: dict[str, str], greeting: str) -> str:
    """Create the demo's flow; return its id."""
    body = {"name": f"demo-{time.strftime('%H%M%S')}", "greeting": greeting}
    try:
        response = await client.post("/api/flows", json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DemoSetupError(f"POST /api/flows failed: {type(exc).__name__}: {exc}") from exc
    if response.status_code == 401:
        hint = "pass --api-key (or set DEV_API_KEY) with the key `make dev` printed"
        raise DemoSetupError(f"the API refused the key ({response.text[:200]}); {hint}")
    if response.status_code != 201:
        raise DemoSetupError(f"POST /api/flows answered {response.status_code}: {response.text[:300]}")
    return str(response.json()["id"])


async def run_demo(config: DemoConfig, on_result: Callable[[SessionResult], None] | None = None) -> DemoSummary:
    """Run ``config.sessions`` frontends, at most ``config.concurrency`` at once; call ``on_result`` as each ends."""
    if config.sessions < 1 or config.concurrency < 1:
        raise ValueError("sessions and concurrency must be at least 1")
    connections = 2 * config.concurrency + 8  # each frontend: its event stream plus one request at a time
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = auth_headers(config.api_key)
    rooms = RoomFactory(config.room_backend)
    async with httpx.AsyncClient(base_url=config.api_url, limits=limits, timeout=httpx.Timeout(15.0)) as client:
        try:
            flow_id = await create_flow(client, headers, config.greeting)
            frontend = Frontend(
                client=client,
                rooms=rooms,
                flow_id=flow_id,
                headers=headers,
                ready_timeout_s=config.ready_timeout_s,
                join_timeout_s=config.join_timeout_s,
                sse_grace_s=config.sse_grace_s,
                end_sessions=config.end_sessions,
            )
            slots = asyncio.Semaphore(config.concurrency)

            async def one(index: int) -> SessionResult:
                async with slots:
                    result = await run_frontend(frontend, index)
                if on_result is not None:
                    on_result(result)
                return result

            started = time.monotonic()
            results = await asyncio.gather(*(one(i) for i in range(config.sessions)))
            wall_s = time.monotonic() - started
        finally:
            await rooms.aclose()
    backend = "+".join(sorted(rooms.used)) or "none"
    return summarise(results, concurrency=config.concurrency, wall_s=wall_s, backend=backend)
