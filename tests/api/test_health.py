"""Probes: liveness is the process; readiness needs Redis, bounded in time, and reports PostgreSQL."""

from __future__ import annotations

import asyncio
import time

from services.api.app import create_app
from services.api.routes.health import check
from services.api.settings import ApiSettings
from tests.api.conftest import http_client
from tests.api.proxy import proxied

PROBE_TIMEOUT_S = 0.3


async def test_a_check_that_does_not_answer_is_cut_short() -> None:
    started = time.monotonic()
    assert await check("hangs", asyncio.Event().wait(), 0.05) == "unreachable: no answer within 0.05s"
    assert time.monotonic() - started < 1.0


async def test_a_failing_check_says_what_failed_not_where() -> None:
    async def refused() -> None:
        raise ConnectionRefusedError("connect to db.internal:5432 refused")

    assert await check("postgres", refused(), 1.0) == "unreachable: ConnectionRefusedError"


async def test_not_ready_without_redis(api_settings: ApiSettings) -> None:
    async with proxied(api_settings.redis_url) as (proxy, url):
        app = create_app(api_settings.model_copy(update={"redis_url": url, "probe_timeout_s": PROBE_TIMEOUT_S}))
        async with app.router.lifespan_context(app), http_client(app, None) as client:
            assert (await client.get("/readyz")).status_code == 200

            await proxy.cut()
            started = time.monotonic()
            response = await client.get("/readyz")
            assert time.monotonic() - started < PROBE_TIMEOUT_S + 0.2
            assert response.status_code == 503, response.text
            body = response.json()
            assert (body["status"], body["checks"]["postgres"]) == ("not ready", "ok")
            assert body["checks"]["redis"].startswith("unreachable: "), body
            assert (await client.get("/healthz")).status_code == 200
