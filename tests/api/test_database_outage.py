"""PostgreSQL becomes unreachable: sessions are still accepted and their agents initialised, the API stays ready.

The API reaches the real PostgreSQL through a TCP proxy the test cuts: open connections drop and new ones are
refused, as when the server goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import jwt
from fastapi import FastAPI

from services.api.admin import create_key
from services.api.app import create_app
from services.api.settings import ApiSettings
from tests.api.conftest import http_client, new_flow
from tests.api.proxy import CuttableProxy, proxied

TTL_S = 0.2
POOL_TIMEOUT_S = 0.5
PROBE_TIMEOUT_S = 0.3


@contextlib.asynccontextmanager
async def api_through_proxy(
    api_settings: ApiSettings,
) -> AsyncIterator[tuple[CuttableProxy, FastAPI, httpx.AsyncClient]]:
    """The app, reaching PostgreSQL through a proxy, with short cache TTLs; a client with a new organisation's key."""
    key, _org = await create_key(api_settings.database_url, f"outage-{uuid.uuid4().hex[:8]}")
    async with proxied(api_settings.database_url) as (proxy, url):
        settings = api_settings.model_copy(
            update={
                "database_url": url,
                "flow_cache_ttl_s": TTL_S,
                "auth_cache_ttl_s": TTL_S,
                "cache_stale_max_s": 60.0,
                "db_pool_timeout_s": POOL_TIMEOUT_S,
                "probe_timeout_s": PROBE_TIMEOUT_S,
            }
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app), http_client(app, key) as client:
            yield proxy, app, client


async def test_sessions_are_accepted_while_postgres_is_unreachable(api_settings: ApiSettings) -> None:
    async with api_through_proxy(api_settings) as (proxy, _app, client):
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


async def _credential(app: FastAPI, session_id: str) -> str:
    request = await app.state.admission.snapshot(session_id)
    assert request is not None
    return str(request.agent_credential)


async def _flow_init(client: httpx.AsyncClient, session_id: str, credential: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {credential}"}
    return await client.post(f"/internal/sessions/{session_id}/flow-init", headers=headers)


async def test_agents_initialise_their_flow_while_postgres_is_unreachable(api_settings: ApiSettings) -> None:
    async with api_through_proxy(api_settings) as (proxy, app, client):
        flow_id = await new_flow(client, greeting="Still here", definition={"steps": 2}, agentSettings={"tts": "x"})
        before = (await client.post(f"/api/flows/{flow_id}/sessions")).json()["sessionId"]  # warms key and flow

        await proxy.cut()
        await asyncio.sleep(TTL_S * 1.5)  # the cached flow expires: its refresh now needs the database
        during = await client.post(f"/api/flows/{flow_id}/sessions")
        assert during.status_code == 202, during.text

        # Requested before the outage and during it: the agent of each still gets its flow, at once.
        for sid in (before, during.json()["sessionId"]):
            started = time.monotonic()
            response = await _flow_init(client, sid, await _credential(app, sid))
            assert time.monotonic() - started < POOL_TIMEOUT_S
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["sessionId"], body["flowId"], body["greeting"]) == (sid, flow_id, "Still here")
            assert (body["definition"], body["agentSettings"]["tts"]) == ({"steps": 2}, "x")

        # Another session's credential is still refused; a session only the database could know is not "not
        # found" (the agent would give up) but 503, which the agent retries.
        refused = await _flow_init(client, before, await _credential(app, during.json()["sessionId"]))
        assert refused.status_code == 403, refused.text
        claims = jwt.decode(await _credential(app, before), options={"verify_signature": False})
        unknown = uuid.uuid4().hex
        forged_for_unknown = jwt.encode({**claims, "sub": unknown}, api_settings.agent_credential_secret, "HS256")
        response = await _flow_init(client, unknown, forged_for_unknown)
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"


async def test_the_api_stays_ready_but_degraded_while_postgres_is_unreachable(api_settings: ApiSettings) -> None:
    async with api_through_proxy(api_settings) as (proxy, _app, client):
        response = await client.get("/readyz")
        assert (response.status_code, response.json()) == (
            200,
            {"status": "ready", "checks": {"redis": "ok", "postgres": "ok"}},
        )

        await proxy.cut()
        for _ in range(3):  # broken pooled connections, then none: each answers within the probe's bound
            started = time.monotonic()
            response = await client.get("/readyz")
            assert time.monotonic() - started < PROBE_TIMEOUT_S + 0.2
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["status"], body["checks"]["redis"]) == ("degraded", "ok")
            assert body["checks"]["postgres"].startswith("unreachable: "), body
        assert (await client.get("/healthz")).status_code == 200
