"""``GET /metrics`` over real HTTP (uvicorn): open to Prometheus without a key, and its numbers move with what the
API does: a refused admission, an open SSE stream."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from contracts.events import SessionStatusChanged
from services.api.admin import create_key
from services.api.app import create_app
from services.api.settings import ApiSettings
from tests.api.conftest import http_client, new_flow
from tests.polling import wait_until


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served(api_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The test app behind a real uvicorn server on a free port (its lifespan already runs), and a plain client."""
    port = _free_port()
    config = uvicorn.Config(api_app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started, deadline_s=10, what="uvicorn listening")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as plain:
            yield plain
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


async def _scrape(plain: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await plain.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def test_metrics_need_no_key_and_count_refused_admissions(
    served: httpx.AsyncClient, api_settings: ApiSettings
) -> None:
    refused = ("agentready_admission_refusals_total", (("reason", "org_capacity"),))
    before = (await _scrape(served)).get(refused, 0.0)
    capped = create_app(api_settings.model_copy(update={"max_open_sessions_per_org": 1}))
    key, _ = await create_key(api_settings.database_url, f"capped-{uuid.uuid4().hex[:8]}")
    async with capped.router.lifespan_context(capped), http_client(capped, key) as client:
        flow_id = await new_flow(client)
        answers = [(await client.post(f"/api/flows/{flow_id}/sessions")).status_code for _ in range(3)]
    assert answers == [202, 429, 429]
    assert (await _scrape(served))[refused] == before + 2


async def test_an_open_sse_stream_is_counted_until_it_closes(
    served: httpx.AsyncClient, client: httpx.AsyncClient, api_app: FastAPI, api_key: str
) -> None:
    gauge = ("agentready_sse_connections", ())
    before = (await _scrape(served))[gauge]
    sid = (await client.post(f"/api/flows/{await new_flow(client)}/sessions")).json()["sessionId"]
    headers = {"Authorization": f"Bearer {api_key}"}
    async with served.stream("GET", f"/api/sessions/{sid}/events", headers=headers) as stream:
        assert stream.status_code == 200
        await wait_until(
            lambda: api_app.state.fanout.listener_count(sid) == 1, deadline_s=5, what="the stream listening"
        )
        assert (await _scrape(served))[gauge] == before + 1
        await api_app.state.publisher.publish(
            SessionStatusChanged(session_id=sid, from_status="pending", to_status="ended")
        )
        body = "".join([chunk async for chunk in stream.aiter_text()])  # the server closes it at the terminal status
    assert '"status":"ended"' in body
    assert (await _scrape(served))[gauge] == before
