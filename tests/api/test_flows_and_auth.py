"""Flows CRUD, API keys, organisation isolation and the clear 4xx answers of the HTTP edge."""

from __future__ import annotations

import uuid

import httpx
import pytest

from services.api.admin import KeyConflictError, create_key
from services.api.auth import KEY_PREFIX, hash_key
from tests.api.conftest import new_flow


async def test_flow_has_definition_and_agent_settings(client: httpx.AsyncClient) -> None:
    flow_id = await new_flow(
        client, definition={"nodes": [{"id": "start"}]}, agentSettings={"tts": "offline", "readyTimeoutS": 5}
    )
    body = (await client.get(f"/api/flows/{flow_id}")).json()
    assert body["definition"] == {"nodes": [{"id": "start"}]}
    assert body["agentSettings"]["tts"] == "offline" and body["agentSettings"]["readyTimeoutS"] == 5
    listed = (await client.get("/api/flows")).json()["flows"]
    assert flow_id in [f["id"] for f in listed]


async def test_patch_changes_only_given_fields(client: httpx.AsyncClient) -> None:
    flow_id = await new_flow(client, greeting="Before")
    response = await client.patch(f"/api/flows/{flow_id}", json={"greeting": "After", "definition": {"v": 2}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["greeting"], body["definition"]) == ("support", "After", {"v": 2})
    assert (await client.get(f"/api/flows/{flow_id}")).json()["greeting"] == "After"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"name": 5}, "name"),
        ({"agentSettings": {"readyTimeoutS": -1}}, "readyTimeoutS"),
        ({"agentSettings": {"speakerColour": "x"}}, "speakerColour"),  # unknown setting
        ({"agentSettings": {"voice": ""}}, "voice"),
        ({"definition": [1, 2]}, "definition"),
    ],
)
async def test_patch_bad_input_is_422(client: httpx.AsyncClient, body: dict[str, object], field: str) -> None:
    flow_id = await new_flow(client)
    response = await client.patch(f"/api/flows/{flow_id}", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]


async def test_unknown_flow_patch_is_404(client: httpx.AsyncClient) -> None:
    response = await client.patch("/api/flows/nope", json={"name": "x"})
    assert response.status_code == 404 and "not found" in response.json()["error"]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing API key"),
        ({"Authorization": "Bearer ar_not-a-real-key-000000"}, "invalid API key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "malformed Authorization"),
        ({"Authorization": "Bearer"}, "malformed Authorization"),
    ],
)
async def test_missing_or_wrong_key_is_401(anonymous: httpx.AsyncClient, headers: dict[str, str], message: str) -> None:
    for method, path in (("GET", "/api/flows"), ("POST", "/api/flows/x/sessions"), ("GET", "/api/sessions/x")):
        response = await anonymous.request(method, path, headers=headers)
        assert response.status_code == 401, (path, response.text)
        assert message in response.json()["error"]
        assert response.headers["www-authenticate"] == "Bearer"


async def test_another_organisation_sees_404(client: httpx.AsyncClient, other_client: httpx.AsyncClient) -> None:
    flow_id = await new_flow(client)
    session_id = (await client.post(f"/api/flows/{flow_id}/sessions")).json()["sessionId"]
    answers = [
        await other_client.get(f"/api/flows/{flow_id}"),
        await other_client.patch(f"/api/flows/{flow_id}", json={"name": "stolen"}),
        await other_client.post(f"/api/flows/{flow_id}/sessions"),
        await other_client.get(f"/api/sessions/{session_id}"),
        await other_client.get(f"/api/sessions/{session_id}/events"),
        await other_client.delete(f"/api/sessions/{session_id}"),
    ]
    assert [a.status_code for a in answers] == [404] * len(answers), [a.text for a in answers]
    assert flow_id not in [f["id"] for f in (await other_client.get("/api/flows")).json()["flows"]]
    assert (await client.get(f"/api/flows/{flow_id}")).json()["name"] == "support"


async def test_create_key_stores_only_a_hash_and_is_idempotent(database_url: str, api_key: str) -> None:
    import psycopg

    org = f"cli-{uuid.uuid4().hex[:8]}"
    key, org_id = await create_key(database_url, org)
    assert key.startswith(KEY_PREFIX) and len(key) > 40
    given = f"dev-{uuid.uuid4().hex}"
    assert await create_key(database_url, org, given) == (given, org_id)
    assert await create_key(database_url, org, given) == (given, org_id)  # again: same key, same org
    with pytest.raises(KeyConflictError):
        await create_key(database_url, f"thief-{uuid.uuid4().hex[:8]}", given)
    with pytest.raises(ValueError, match="printable ASCII"):
        await create_key(database_url, org, "short")
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT key_hash FROM api_keys WHERE org_id = %s", (org_id,))
        hashes = {row[0] for row in await cur.fetchall()}
    assert hashes == {hash_key(key), hash_key(given)} and key not in hashes


async def test_openapi_documents_routes_and_bearer_auth(anonymous: httpx.AsyncClient) -> None:
    spec = (await anonymous.get("/openapi.json")).json()
    for path in (
        "/api/flows",
        "/api/flows/{flow_id}",
        "/api/flows/{flow_id}/sessions",
        "/api/flows/{flow_id}/test-audio",
        "/api/sessions/{session_id}",
        "/api/sessions/{session_id}/events",
        "/internal/sessions/{session_id}/flow-init",
        "/healthz",
        "/readyz",
    ):
        assert path in spec["paths"], path
    assert any(s.get("scheme") == "bearer" for s in spec["components"]["securitySchemes"].values())
    assert (await anonymous.get("/docs")).status_code == 200
    assert (await anonymous.get("/readyz")).json()["status"] == "ready"
