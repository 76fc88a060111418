"""End to end: a customer's endpoint hears ``session.ready`` and ``session.ended`` of a real session, signed, with the
stage times the session store recorded, from the webhook sender running as its own process."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from tests.e2e.conftest import Stack
from tests.polling import wait_until
from tests.webhooks.receiver import Receiver, spec_signature_valid

pytestmark = pytest.mark.e2e


async def test_a_sessions_lifecycle_reaches_the_customers_endpoint(stack: Stack) -> None:
    async with Receiver.running() as receiver, stack.client() as client:
        endpoint = await client.post("/api/webhooks", json={"url": f"{receiver.base_url}/ok/lifecycle"})
        assert endpoint.status_code == 201, endpoint.text
        secret = endpoint.json()["secret"]
        flow = await client.post("/api/flows", json={"name": "hooks", "greeting": "Hello"})
        created = await client.post(f"/api/flows/{flow.json()['id']}/sessions")
        assert created.status_code == 202, created.text
        session_id = created.json()["sessionId"]

        def types() -> list[str]:
            return [
                json.loads(r.body)["type"]
                for r in receiver.received
                if json.loads(r.body)["data"]["sessionId"] == session_id
            ]

        try:
            await wait_until(lambda: "session.ready" in types(), deadline_s=15, what="session.ready webhook")
            assert (await client.delete(f"/api/sessions/{session_id}")).status_code in (200, 202, 204)
            await wait_until(lambda: "session.ended" in types(), deadline_s=15, what="session.ended webhook")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- stack output ---\n{stack.tail()}") from exc
    mine = [r for r in receiver.received if json.loads(r.body)["data"]["sessionId"] == session_id]
    assert all(spec_signature_valid(secret, r.headers, r.body) for r in mine)
    ready, ended = (json.loads(r.body) for r in mine)
    stages = {k: datetime.fromisoformat(v) for k, v in ready["data"]["stages"].items() if v}
    assert {"requestedAt", "dispatchedAt", "agentJoinedAt", "readyAt"} <= set(stages), ready
    assert stages["requestedAt"] <= stages["readyAt"] and ready["data"]["readyAfterMs"] > 0
    assert ended["data"]["endCode"] == "ended_by_request" and ended["data"]["stages"]["endedAt"]
