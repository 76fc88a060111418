"""Every kind of bad input gets a clear 4xx with a JSON body saying what is wrong, never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import new_flow


async def test_oversize_body_is_413(client: httpx.AsyncClient) -> None:
    big = {"name": "x", "greeting": "hi", "definition": {"blob": "x" * 200_000}}
    response = await client.post("/api/flows", json=big)
    assert response.status_code == 413
    assert "too large" in response.json()["error"]


async def test_oversize_chunked_body_is_413(client: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(100):
            yield b"x" * 1024

    response = await client.post("/api/flows", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"", 422, "body"),
        (b"[1, 2]", 422, "invalid request"),
        (b'{"name": "x"', 400, "malformed JSON"),
        (b'{"name": "x", "greeting": ""}', 422, "greeting"),
        (b'{"name": "x", "greeting": "hi", "agentSettings": "fast"}', 422, "agentSettings"),
    ],
)
async def test_bad_flow_bodies(client: httpx.AsyncClient, content: bytes, status: int, message: str) -> None:
    response = await client.post("/api/flows", content=content, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


@pytest.mark.parametrize("key", ["x" * 201, "has space", "tab\there"])
async def test_bad_idempotency_key_is_422(client: httpx.AsyncClient, key: str) -> None:
    flow_id = await new_flow(client)
    response = await client.post(f"/api/flows/{flow_id}/sessions", headers={"Idempotency-Key": key})
    assert response.status_code in (400, 422), response.text
    assert "error" in response.json()


async def test_unknown_ids_and_routes(client: httpx.AsyncClient) -> None:
    answers = {
        "flow": await client.get("/api/flows/nope"),
        "session": await client.get("/api/sessions/nope"),
        "events": await client.get("/api/sessions/nope/events"),
        "delete": await client.delete("/api/sessions/nope"),
        "route": await client.get("/api/nothing-here"),
    }
    for what, response in answers.items():
        assert response.status_code == 404, what
        assert response.json()["error"], what
    wrong_method = await client.put("/api/flows")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]


async def test_bad_query_parameter_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/flows", params={"limit": "many"})
    assert response.status_code == 422 and "limit" in response.json()["error"]
