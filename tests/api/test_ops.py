"""Operators' routes: stage latencies of the last minutes (the key's organisation only) and the ``ops`` scope."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI

from services.api.admin import KeyRequest, create_key
from services.api.scopes import DEFAULT_SCOPES, OPS
from tests.api.conftest import http_client
from tests.runtime.test_stage_latency import seed


@pytest.fixture
async def ops_org(api_app: FastAPI, database_url: str) -> tuple[str, str]:
    """(key with the ops scope, its organisation id) of a fresh organisation."""
    return await create_key(database_url, f"ops-{uuid.uuid4().hex[:8]}", request=KeyRequest(scopes=[OPS]))


async def test_stage_latencies_of_the_organisations_last_minutes(
    api_app: FastAPI, database_url: str, ops_org: tuple[str, str]
) -> None:
    key, org_id = ops_org
    await seed(database_url, org_id)
    await seed(database_url, f"another-{uuid.uuid4().hex[:8]}")  # never counted for this key
    async with http_client(api_app, key) as client:
        response = await client.get("/api/ops/stages", params={"minutes": 15})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["minutes"], body["sessions"], body["ready"]) == (15, 21, 20)
    first, *_, total = body["stages"]
    assert first == {"start": "requested", "end": "dispatched", "sessions": 20, "p50Ms": 1050.0, "p95Ms": 1905.0}
    assert (total["start"], total["end"], total["p50Ms"], total["p95Ms"]) == ("requested", "ready", 1300.0, 2155.0)


async def test_an_empty_window_answers_nulls(api_app: FastAPI, ops_org: tuple[str, str]) -> None:
    async with http_client(api_app, ops_org[0]) as client:
        body = (await client.get("/api/ops/stages")).json()
    assert body["sessions"] == 0
    assert {(s["sessions"], s["p50Ms"], s["p95Ms"]) for s in body["stages"]} == {(0, None, None)}


async def test_stages_need_the_ops_scope_and_a_sane_window(
    api_app: FastAPI, database_url: str, ops_org: tuple[str, str]
) -> None:
    plain, _ = await create_key(
        database_url, f"plain-{uuid.uuid4().hex[:8]}", request=KeyRequest(scopes=DEFAULT_SCOPES)
    )
    async with http_client(api_app, plain) as client:
        denied = await client.get("/api/ops/stages")
    async with http_client(api_app, ops_org[0]) as client:
        too_long = await client.get("/api/ops/stages", params={"minutes": 0})
    assert denied.status_code == 403
    assert "'ops'" in denied.json()["error"] and "--scope ops" in denied.json()["error"]
    assert too_long.status_code == 422
    assert "minutes" in too_long.json()["error"]
