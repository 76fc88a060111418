"""End to end, watching Server-Sent Events only: a session reaches ``ready``, or ``expired`` with no agent."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.polling import wait_until

pytestmark = pytest.mark.e2e


async def _watch(client: httpx.AsyncClient, session_id: str, deadline_s: float) -> list[dict[str, object]]:
    """Every status event until the stream closes at a terminal status, or ``until`` is reached."""
    events: list[dict[str, object]] = []
    end = time.monotonic() + deadline_s
    timeout = httpx.Timeout(5.0, read=deadline_s)
    async with client.stream("GET", f"/api/sessions/{session_id}/events", timeout=timeout) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
                if events[-1]["status"] == "ready":
                    return events
            assert time.monotonic() < end, f"no terminal status within {deadline_s} s: {events}"
    return events


async def _post_session(client: httpx.AsyncClient, **flow: object) -> str:
    created_flow = await client.post("/api/flows", json={"name": "e2e-sse", "greeting": "Hello over SSE", **flow})
    assert created_flow.status_code == 201, created_flow.text
    created = await client.post(f"/api/flows/{created_flow.json()['id']}/sessions")
    assert created.status_code == 202, created.text
    return str(created.json()["sessionId"])


async def test_post_to_ready_watching_sse_only(stack: Stack) -> None:
    async with stack.client() as client:
        started = time.monotonic()
        session_id = await _post_session(client)
        try:
            events = await _watch(client, session_id, deadline_s=15)
        except (AssertionError, httpx.HTTPError) as exc:
            raise AssertionError(f"{exc!r}\n--- stack output ---\n{stack.tail()}") from exc
    statuses = [e["status"] for e in events]
    assert statuses[-1] == "ready", statuses
    assert statuses == sorted(statuses, key=["pending", "dispatched", "agent_joined", "ready"].index)
    print(f"POST -> ready over SSE in {(time.monotonic() - started) * 1000:.0f} ms: {statuses}")


async def test_session_expires_when_no_agent_answers(stack_without_agent: Stack) -> None:
    stack = stack_without_agent
    async with stack.client() as client:
        started = time.monotonic()
        session_id = await _post_session(client, agentSettings={"readyTimeoutS": 2})
        try:
            events = await _watch(client, session_id, deadline_s=15)
        except (AssertionError, httpx.HTTPError) as exc:
            raise AssertionError(f"{exc!r}\n--- stack output ---\n{stack.tail()}") from exc
        elapsed = time.monotonic() - started
        # the session store announces a change just before committing it: a GET right after the event may still
        # read the old row for a moment, so read until the record agrees (bounded)
        final: dict[str, Any] = {}

        async def recorded() -> bool:
            final.update((await client.get(f"/api/sessions/{session_id}")).json())
            return bool(final["status"] == "expired")

        await wait_until(recorded, deadline_s=5, what="the expiry recorded")
    assert events[-1]["status"] == "expired", events
    assert "deadline" in str(events[-1]["reason"])
    assert 1.5 < elapsed < 10, elapsed
    assert final["status"] == "expired" and final["stages"]["ended"] is not None
    print(f"POST -> expired over SSE in {elapsed * 1000:.0f} ms: {[e['status'] for e in events]}")
