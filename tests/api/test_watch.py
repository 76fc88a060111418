"""POST /api/sessions/{id}/watch: a hidden, listen-only token for the session's room, scoped to the organisation."""

from __future__ import annotations

import httpx
import jwt
from redis.asyncio import Redis

from contracts.keys import watched_room_key
from tests.api.conftest import new_flow


async def _session(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post(f"/api/flows/{await new_flow(client)}/sessions")
    assert response.status_code == 202, response.text
    return dict(response.json())


async def test_watch_token_is_listen_only_hidden_and_carries_the_role(
    client: httpx.AsyncClient, api_redis_url: str
) -> None:
    session = await _session(client)
    redis = Redis.from_url(api_redis_url)
    try:
        assert not await redis.exists(watched_room_key(session["roomName"]))
    finally:
        await redis.aclose()
    response = await client.post(f"/api/sessions/{session['sessionId']}/watch", json={"role": "supervisor"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["roomName"], body["role"], body["topic"]) == (session["roomName"], "supervisor", "flow-events")
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["sub"] == body["identity"] != f"user-{session['sessionId']}"
    assert claims["attributes"] == {"agentready.role": "supervisor"}
    video = claims["video"]
    assert video["room"] == session["roomName"] and video["roomJoin"] is True
    assert (video["hidden"], video["canPublish"], video["canPublishData"], video["canSubscribe"]) == (
        True,
        False,
        False,
        True,
    )
    assert not video.get("roomAdmin") and not video.get("roomCreate")
    redis = Redis.from_url(api_redis_url)
    try:  # the relay now sends this room its flow events
        assert await redis.exists(watched_room_key(session["roomName"]))
    finally:
        await redis.aclose()


async def test_another_organisations_session_cannot_be_watched(
    client: httpx.AsyncClient, other_client: httpx.AsyncClient
) -> None:
    session = await _session(client)
    response = await other_client.post(f"/api/sessions/{session['sessionId']}/watch", json={"role": "admin"})
    assert response.status_code == 404 and "not found" in response.json()["error"]


async def test_unknown_role_is_422_and_no_key_is_401(client: httpx.AsyncClient, anonymous: httpx.AsyncClient) -> None:
    session = await _session(client)
    url = f"/api/sessions/{session['sessionId']}/watch"
    bad = await client.post(url, json={"role": "root"})
    assert bad.status_code == 422 and "role" in bad.json()["error"]
    assert (await anonymous.post(url, json={"role": "monitor"})).status_code == 401
