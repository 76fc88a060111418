"""End to end through HTTP only: a session goes from POST to ``ready`` across four processes."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import httpx
import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


async def _until_status(
    client: httpx.AsyncClient, session_id: str, wanted: str, deadline_s: float
) -> dict[str, object]:
    deadline = time.monotonic() + deadline_s
    body: dict[str, object] = {}
    while time.monotonic() < deadline:
        response = await client.get(f"/api/sessions/{session_id}")
        assert response.status_code == 200, response.text  # never 404, even right after the POST
        body = response.json()
        if body["status"] == wanted:
            return body
        assert body["status"] not in {"failed", "expired", "ended"}, body
        await asyncio.sleep(0.02)
    raise AssertionError(f"session {session_id} not {wanted} within {deadline_s} s; last seen {body}")


async def test_session_becomes_ready(stack: Stack) -> None:
    async with stack.client() as client:
        flow = await client.post("/api/flows", json={"name": "e2e", "greeting": "Hello from the agent"})
        assert flow.status_code == 201, flow.text
        started = time.monotonic()
        created = await client.post(f"/api/flows/{flow.json()['id']}/sessions")
        assert created.status_code == 202, created.text
        session = created.json()
        try:
            body = await _until_status(client, session["sessionId"], "ready", deadline_s=10)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- stack output ---\n{stack.tail()}") from exc
        elapsed = time.monotonic() - started
    stages = body["stages"]
    assert isinstance(stages, dict)
    at = {k: datetime.fromisoformat(stages[k]) for k in ("requested", "dispatched", "agentJoined", "ready")}
    # The agent's job starts inside CreateDispatch, so agentJoined may be stamped just before dispatched.
    assert at["requested"] <= at["dispatched"] and at["requested"] <= at["agentJoined"] <= at["ready"], stages
    assert body["roomName"] == session["roomName"]
    print(f"POST -> ready in {elapsed * 1000:.0f} ms")


async def test_bad_input_gets_a_clear_4xx(stack: Stack) -> None:
    async with stack.client() as client:
        malformed = await client.post("/api/flows", content=b"{", headers={"content-type": "application/json"})
        unknown = await client.post("/api/flows/no-such-flow/sessions")
    assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["error"]
    assert unknown.status_code == 404 and "not found" in unknown.json()["error"]
