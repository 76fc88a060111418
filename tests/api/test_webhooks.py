"""``POST /api/livekit/webhook``: signed webhooks become events; forged, unsigned or stale ones change nothing."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from faststream.redis.parser import BinaryMessageFormatV1
from livekit import api
from livekit.protocol import models
from redis.asyncio import Redis

from contracts.events import SessionEndRequested, UserPresenceChanged
from contracts.flow_events import ROLE_ATTRIBUTE
from contracts.streams import SESSION_END_REQUESTED, USER_PRESENCE_CHANGED
from devstack.livekit_sim.webhooks import encode, sign
from tests.api.conftest import http_client

URL = "/api/livekit/webhook"


@pytest.fixture
async def webhook_client(api_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(api_app, None) as client:
        yield client


@pytest.fixture
async def redis(api_redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(api_redis_url)
    yield client
    await client.aclose()


async def published(redis: Redis, stream: str, session_id: str) -> list[dict[str, Any]]:
    """The events of ``session_id`` on ``stream`` (JSON bodies), oldest first."""
    model = SessionEndRequested if stream == SESSION_END_REQUESTED else UserPresenceChanged
    found = []
    for _, fields in await redis.xrange(stream):
        event = model.model_validate_json(BinaryMessageFormatV1.parse(fields[b"__data__"])[0])
        if event.session_id == session_id:
            found.append(event.model_dump(mode="json"))
    return found


def room(sid: str) -> models.Room:
    return models.Room(sid="RM_x", name=f"session-{sid}")


def person(identity: str, kind: int = models.ParticipantInfo.STANDARD, **attributes: str) -> models.ParticipantInfo:
    return models.ParticipantInfo(
        sid=f"PA_{uuid.uuid4().hex[:8]}",
        identity=identity,
        kind=kind,  # type: ignore[arg-type]
        attributes=attributes,
        joined_at_ms=int(time.time() * 1000) - 5000,
    )


async def post(client: httpx.AsyncClient, body: str, auth: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/webhook+json", **({"Authorization": auth} if auth else {})}
    return await client.post(URL, content=body.encode(), headers=headers)


async def test_a_signed_room_finished_requests_the_end_as_room_closed(
    webhook_client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = uuid.uuid4().hex
    body = encode("room_finished", room(sid))
    response = await post(webhook_client, body, sign(body, "devkey", "secret"))
    assert response.status_code == 200, response.text
    assert response.json()["published"] == ["session.end_requested"]
    [end] = await published(redis, SESSION_END_REQUESTED, sid)
    assert end["code"] == "room_closed" and end["reason"].startswith("The room was closed.")


async def test_the_users_arrival_and_departure_are_published_but_not_agents_or_watchers(
    webhook_client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = uuid.uuid4().hex
    user = person(f"user-{sid}")
    for event, who in [
        ("participant_joined", user),
        ("participant_joined", person("agent-1", models.ParticipantInfo.AGENT)),
        ("participant_left", person("watcher-1", **{ROLE_ATTRIBUTE: "monitor"})),
        ("participant_left", user),
    ]:
        body = encode(event, room(sid), who)
        response = await post(webhook_client, body, sign(body, "devkey", "secret"))
        assert response.status_code == 200, response.text
    presence = await published(redis, USER_PRESENCE_CHANGED, sid)
    assert [(p["present"], p["participant_sid"], p["source"]) for p in presence] == [
        (True, user.sid, "livekit"),
        (False, user.sid, "livekit"),
    ]
    assert presence[1]["occurred_at"] >= presence[0]["occurred_at"]


async def test_a_room_that_is_not_a_sessions_is_acknowledged_and_ignored(webhook_client: httpx.AsyncClient) -> None:
    body = encode("room_finished", models.Room(name="someone-elses-room"))
    response = await post(webhook_client, body, sign(body, "devkey", "secret"))
    assert response.status_code == 200 and response.json()["published"] == []
    assert "not a session's room" in response.json()["ignored"]


def _stale(body: str) -> str:
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    return api.AccessToken("devkey", "secret").with_sha256(digest).with_ttl(timedelta(seconds=-120)).to_jwt()


@pytest.mark.parametrize(
    "auth",
    [
        lambda body: None,
        lambda body: sign(body, "devkey", "not-the-secret"),
        lambda body: sign(body, "otherkey", "secret"),
        lambda body: sign(body.replace("room_finished", "room_started"), "devkey", "secret"),  # another body's hash
        _stale,
        lambda body: api.AccessToken("devkey", "secret").to_jwt(),  # signed, but no sha256 claim
        lambda body: "not-a-jwt",
    ],
    ids=["unsigned", "forged", "unknown_key", "hash_mismatch", "stale", "no_sha256", "garbage"],
)
async def test_forged_unsigned_or_stale_webhooks_are_refused_and_change_nothing(
    webhook_client: httpx.AsyncClient, redis: Redis, auth: Any
) -> None:
    sid = uuid.uuid4().hex
    body = encode("room_finished", room(sid))
    response = await post(webhook_client, body, auth(body))
    assert response.status_code == 401, response.text
    assert "error" in response.json()
    assert await published(redis, SESSION_END_REQUESTED, sid) == []


@pytest.mark.parametrize(
    "body", ["not json", '{"event": 5}', "[]", "{}"], ids=["not_json", "wrong_type", "not_an_object", "no_event"]
)
async def test_signed_bodies_that_are_not_webhooks_are_400(webhook_client: httpx.AsyncClient, body: str) -> None:
    response = await post(webhook_client, body, sign(body, "devkey", "secret"))
    assert response.status_code == 400, response.text
    assert "not a LiveKit WebhookEvent" in response.json()["error"]
