"""End to end, as a browser on another origin: preflight, a publishable key starts the session, and the SSE stream
opened with ``?access_token=<clientToken>`` (no Authorization header, as EventSource) follows it to ``ready``."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from services.api.admin import KeyRequest, create_key
from services.api.scopes import ALL_SCOPES
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

PAGE = "http://127.0.0.1:5173"  # a local origin: allowed by the dev stack's CORS


async def _statuses_until_ready(page: httpx.AsyncClient, url: str, deadline_s: float) -> list[str]:
    statuses: list[str] = []
    end = time.monotonic() + deadline_s
    async with page.stream("GET", url, timeout=httpx.Timeout(5.0, read=deadline_s)) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["access-control-allow-origin"] == PAGE
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                statuses.append(json.loads(line[len("data: ") :])["status"])
                if statuses[-1] in ("ready", "failed", "expired", "ended"):
                    return statuses
            assert time.monotonic() < end, f"not ready within {deadline_s} s: {statuses}"
    return statuses


async def test_a_page_on_another_origin_starts_a_session_and_follows_it_to_ready(
    stack: Stack, database_url: str
) -> None:
    org = f"browser-e2e-{uuid.uuid4().hex[:8]}"
    secret, _ = await create_key(database_url, org, request=KeyRequest(scopes=ALL_SCOPES))
    async with httpx.AsyncClient(base_url=stack.api_url, headers={"Authorization": f"Bearer {secret}"}) as backend:
        flow = await backend.post("/api/flows", json={"name": "browser", "greeting": "Hello, browser"})
        assert flow.status_code == 201, flow.text
    flow_id = flow.json()["id"]
    pk, _ = await create_key(
        database_url, org, request=KeyRequest(publishable=True, flow_ids=[flow_id], origins=[PAGE])
    )
    async with httpx.AsyncClient(base_url=stack.api_url, headers={"Origin": PAGE}, timeout=10) as page:
        preflight = await page.options(
            f"/api/flows/{flow_id}/sessions",
            headers={"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"},
        )
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == PAGE
        created = await page.post(f"/api/flows/{flow_id}/sessions", headers={"Authorization": f"Bearer {pk}"})
        assert created.status_code == 202, created.text
        assert created.headers["access-control-allow-origin"] == PAGE
        session = created.json()
        sid, token = session["sessionId"], session["clientToken"]
        assert "authorization" not in page.headers
        try:
            statuses = await _statuses_until_ready(page, f"/api/sessions/{sid}/events?access_token={token}", 20)
        except (AssertionError, httpx.HTTPError) as exc:
            raise AssertionError(f"{exc!r}\n--- stack output ---\n{stack.tail()}") from exc
        assert statuses[-1] == "ready", statuses
        read = await page.get(f"/api/sessions/{sid}", headers={"Authorization": f"Bearer {token}"})
        assert read.status_code == 200 and read.json()["status"] == "ready"
        ended = await page.delete(f"/api/sessions/{sid}", headers={"Authorization": f"Bearer {token}"})
        assert ended.status_code == 202
