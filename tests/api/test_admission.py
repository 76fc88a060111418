"""Idempotent session requests and the per-organisation cap of open sessions, on real Redis."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from fastapi import FastAPI
from faststream.redis import RedisBroker
from redis.asyncio import Redis

from contracts.events import SessionStatusChanged
from contracts.streams import SESSION_REQUESTED
from services.api.admin import create_key
from services.api.app import create_app
from services.api.settings import ApiSettings
from services.session_store.announcing import StatusAnnouncer
from tests.api.conftest import http_client, new_flow


async def _requests_for(api_redis_url: str, session_id: str) -> int:
    redis = Redis.from_url(api_redis_url)
    try:
        entries = await redis.xrevrange(SESSION_REQUESTED, count=200)
    finally:
        await redis.aclose()
    return sum(1 for _, e in entries if session_id.encode() in b"".join(e.values()))


async def test_retry_with_the_same_key_returns_the_same_session(client: httpx.AsyncClient, api_redis_url: str) -> None:
    flow_id = await new_flow(client)
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    first = await client.post(f"/api/flows/{flow_id}/sessions", headers=headers)
    again = await client.post(f"/api/flows/{flow_id}/test-audio", headers=headers)  # the alias shares the key
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert await _requests_for(api_redis_url, first.json()["sessionId"]) == 1
    other = await client.post(f"/api/flows/{flow_id}/sessions", headers={"Idempotency-Key": uuid.uuid4().hex})
    assert other.json()["sessionId"] != first.json()["sessionId"]


async def test_concurrent_retries_get_one_session(client: httpx.AsyncClient) -> None:
    flow_id = await new_flow(client)
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    answers = await asyncio.gather(*(client.post(f"/api/flows/{flow_id}/sessions", headers=headers) for _ in range(8)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["sessionId"] for a in answers}) == 1


async def test_same_key_for_another_flow_is_409(client: httpx.AsyncClient) -> None:
    first, second = await new_flow(client), await new_flow(client)
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    assert (await client.post(f"/api/flows/{first}/sessions", headers=headers)).status_code == 202
    response = await client.post(f"/api/flows/{second}/sessions", headers=headers)
    assert response.status_code == 409 and "Idempotency-Key" in response.json()["error"]


async def test_keys_are_per_organisation(client: httpx.AsyncClient, other_client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    mine = await client.post(f"/api/flows/{await new_flow(client)}/sessions", headers=headers)
    theirs = await other_client.post(f"/api/flows/{await new_flow(other_client)}/sessions", headers=headers)
    assert mine.json()["sessionId"] != theirs.json()["sessionId"]


async def test_cap_answers_429_until_a_session_ends(api_settings: ApiSettings, api_redis_url: str) -> None:
    capped = create_app(api_settings.model_copy(update={"max_open_sessions_per_org": 2, "admission_retry_after_s": 3}))
    key, org_id = await create_key(api_settings.database_url, f"capped-{uuid.uuid4().hex[:8]}")
    broker = RedisBroker(api_redis_url)
    redis = Redis.from_url(api_redis_url)
    app: FastAPI = capped
    try:
        await broker.connect()
        async with app.router.lifespan_context(app), http_client(app, key) as client:
            flow_id = await new_flow(client)
            opened = [await client.post(f"/api/flows/{flow_id}/sessions") for _ in range(2)]
            assert [r.status_code for r in opened] == [202, 202]
            over = await client.post(f"/api/flows/{flow_id}/sessions")
            assert over.status_code == 429, over.text
            assert over.headers["retry-after"] == "3" and "too many sessions" in over.json()["error"]
            retried = await client.post(f"/api/flows/{flow_id}/sessions", headers={"Idempotency-Key": "k-429"})
            assert retried.status_code == 429  # a refused request is not remembered
            # The session store frees the slot when the session reaches a terminal status.
            ended = opened[0].json()["sessionId"]
            await StatusAnnouncer(broker, redis).publish(
                SessionStatusChanged(session_id=ended, org_id=org_id, from_status="pending", to_status="ended")
            )
            assert (await client.post(f"/api/flows/{flow_id}/sessions")).status_code == 202
    finally:
        await broker.stop()
        await redis.aclose()
