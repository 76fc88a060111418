"""Every process of the stack serves its metrics (the API on /metrics, the others on the port the stack gave them)
and a session that runs to ready moves them."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Stack
from tests.polling import wait_until

pytestmark = pytest.mark.e2e


def _total(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def test_a_session_to_ready_shows_on_every_services_metrics(stack: Stack) -> None:
    assert {label for label in stack.metrics} >= {"session-store", "dispatcher", "agent"}, stack.metrics
    async with httpx.AsyncClient(timeout=5) as plain:

        async def scrape(label: str) -> str:
            return (await plain.get(stack.metrics[label])).text

        store_before = _total(await scrape("session-store"), "agentready_session_time_to_ready_seconds_count")
        async with stack.client() as client:
            flow = await client.post("/api/flows", json={"name": "metrics", "greeting": "Hello"})
            created = await client.post(f"/api/flows/{flow.json()['id']}/sessions")
            assert created.status_code == 202, created.text

        async def counted() -> bool:
            seen = _total(await scrape("session-store"), "agentready_session_time_to_ready_seconds_count")
            return seen > store_before

        await wait_until(counted, deadline_s=15, interval_s=0.1, what="the session's time to ready counted")
        store = await scrape("session-store")
        assert _total(store, "agentready_session_stage_seconds_count", stage="dispatched") >= 1
        assert _total(store, "agentready_stream_pending", group="session_store") >= 0
        assert "agentready_stream_stats_up 1.0" in store
        assert _total(await scrape("dispatcher"), "agentready_dispatches_total", attempt="first") >= 1
        assert _total(await scrape("agent"), "agentready_agent_worker_registered") == 1
        api = (await plain.get(f"{stack.api_url}/metrics")).text
        assert "agentready_sse_connections" in api
