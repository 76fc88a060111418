"""A flow whose stored definition cannot be served (written before the limits on free-form JSON, here inserted with
psycopg as such a write left it) no longer makes every read fail: lists and reads show a per-flow error, sessions of
it and its flow-init are refused with 409 saying how to repair it, and a PATCH repairs it."""

from __future__ import annotations

import uuid

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from services.api.session_core import SessionAdmission


def _deep_json(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


@pytest.fixture(params=[300, 3000], ids=["past-serialisation-limit", "past-json-decoder-limit"])
def poisoned_definition(request: pytest.FixtureRequest) -> str:
    """A definition as old writes stored it: 300 levels broke serialisation; 3000 break Python's JSON decoder."""
    return _deep_json(int(request.param))


async def _poison(client: httpx.AsyncClient, database_url: str, definition: str) -> tuple[str, str]:
    """A flow of the client's organisation whose stored definition is ``definition``; returns (flow id, org id)."""
    created = await client.post("/api/flows", json={"name": f"poisoned-{uuid.uuid4().hex}", "greeting": "Hi"})
    assert created.status_code == 201, created.text
    flow_id = created.json()["id"]
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "UPDATE flows SET definition = %s::jsonb WHERE id = %s RETURNING org_id", (definition, flow_id)
        )
        row = await cur.fetchone()
    assert row is not None
    return flow_id, str(row[0])


async def test_reads_of_a_poisoned_flow_answer_with_a_per_flow_error(
    client: httpx.AsyncClient, database_url: str, poisoned_definition: str
) -> None:
    healthy = await client.post("/api/flows", json={"name": "healthy", "greeting": "Hi", "definition": {"a": 1}})
    flow_id, _org = await _poison(client, database_url, poisoned_definition)
    listed = await client.get("/api/flows", params={"limit": 500})
    assert listed.status_code == 200, listed.text
    flows = {flow["id"]: flow for flow in listed.json()["flows"]}
    assert flows[healthy.json()["id"]]["definition"] == {"a": 1}
    assert flows[healthy.json()["id"]]["definitionError"] is None
    assert flows[flow_id]["definition"] == {}
    assert f"PATCH /api/flows/{flow_id}" in flows[flow_id]["definitionError"]
    one = await client.get(f"/api/flows/{flow_id}")
    assert one.status_code == 200, one.text
    assert "nested" in one.json()["definitionError"]


async def test_sessions_and_flow_init_of_a_poisoned_flow_are_409_until_repaired(
    api_app: FastAPI, client: httpx.AsyncClient, database_url: str
) -> None:
    created = await client.post("/api/flows", json={"name": "soon-poisoned", "greeting": "Hi"})
    flow_id = created.json()["id"]
    session = await client.post(f"/api/flows/{flow_id}/sessions")
    assert session.status_code == 202, session.text
    session_id = session.json()["sessionId"]
    admission: SessionAdmission = api_app.state.admission
    requested = await admission.snapshot(session_id)
    assert requested is not None
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("UPDATE flows SET definition = %s::jsonb WHERE id = %s", (_deep_json(300), flow_id))
    api_app.state.flows.forget(requested.org_id, flow_id)  # as after the flow cache's 2 s
    init_url = f"/internal/sessions/{session_id}/flow-init"
    agent = {"Authorization": f"Bearer {requested.agent_credential}"}

    refused = await client.post(f"/api/flows/{flow_id}/sessions")
    assert refused.status_code == 409, refused.text
    assert "PATCH" in refused.json()["error"]
    init = await client.post(init_url, headers=agent)
    assert init.status_code == 409, init.text
    assert "definition" in init.json()["error"]

    repaired = await client.patch(f"/api/flows/{flow_id}", json={"definition": {"steps": []}})
    assert repaired.status_code == 200, repaired.text
    assert repaired.json()["definitionError"] is None
    assert (await client.post(init_url, headers=agent)).json()["definition"] == {"steps": []}
    assert (await client.post(f"/api/flows/{flow_id}/sessions")).status_code == 202
