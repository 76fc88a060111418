"""The HTTP edge: flows, session requests that answer at once, and clear 4xx on bad input."""

from __future__ import annotations

import httpx
import jwt
from redis.asyncio import Redis

from contracts.events import SessionRequested
from contracts.providers import ProviderChoice
from contracts.streams import SESSION_REQUESTED
from services.api.settings import ApiSettings


async def _flow(client: httpx.AsyncClient, greeting: str = "Hello there") -> str:
    response = await client.post("/api/flows", json={"name": "support", "greeting": greeting})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_create_and_get_flow(client: httpx.AsyncClient) -> None:
    flow_id = await _flow(client)
    response = await client.get(f"/api/flows/{flow_id}")
    assert response.status_code == 200
    assert response.json()["greeting"] == "Hello there"


async def test_session_request_answers_202_and_publishes_one_event(
    client: httpx.AsyncClient, api_settings: ApiSettings, api_redis_url: str
) -> None:
    flow_id = await _flow(client, greeting="Welcome!")
    response = await client.post(f"/api/flows/{flow_id}/sessions")
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) >= {"sessionId", "roomName", "token", "livekitUrl", "status", "readyDeadline"}
    assert body["status"] == "pending"

    claims = jwt.decode(body["token"], api_settings.livekit_api_secret, algorithms=["HS256"])
    assert claims["iss"] == api_settings.livekit_api_key
    assert claims["video"]["room"] == body["roomName"]
    assert claims["video"]["roomJoin"] is True
    assert not claims["video"].get("roomAdmin") and not claims["video"].get("roomCreate")

    redis = Redis.from_url(api_redis_url)
    try:
        entries = await redis.xrevrange(SESSION_REQUESTED, count=50)
    finally:
        await redis.aclose()
    published = [e for _, e in entries if body["sessionId"].encode() in b"".join(e.values())]
    assert len(published) == 1


async def test_session_is_visible_right_after_the_post(client: httpx.AsyncClient) -> None:
    flow_id = await _flow(client)
    created = (await client.post(f"/api/flows/{flow_id}/sessions")).json()
    response = await client.get(f"/api/sessions/{created['sessionId']}")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "pending"
    assert body["roomName"] == created["roomName"]
    assert body["stages"]["requested"] is not None


async def test_unknown_flow_is_404_with_a_message(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/flows/nope/sessions")
    assert response.status_code == 404
    assert "flow 'nope' not found" in response.json()["error"]


async def test_unknown_session_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/sessions/does-not-exist")
    assert response.status_code == 404
    assert "not found" in response.json()["error"]


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/flows", content=b'{"name": "x", "greeting": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "malformed JSON" in response.json()["error"]


async def test_wrong_types_and_unknown_fields_are_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/flows", json={"name": 5, "greeting": "hi", "colour": "red"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert "name" in error and "colour" in error


async def test_event_round_trips_through_the_stream(client: httpx.AsyncClient, api_redis_url: str) -> None:
    settings = {"stt": "deepgram/nova-3", "tts": "espeak", "voice": "en-gb", "readyTimeoutS": 20}
    response = await client.post("/api/flows", json={"name": "s", "greeting": "Round trip", "agentSettings": settings})
    assert response.status_code == 201, response.text
    flow_id = response.json()["id"]
    created = (await client.post(f"/api/flows/{flow_id}/sessions")).json()
    redis = Redis.from_url(api_redis_url)
    try:
        entries = await redis.xrevrange(SESSION_REQUESTED, count=50)
    finally:
        await redis.aclose()
    from faststream.redis.parser import BinaryMessageFormatV1  # the broker's own wire format

    for _, fields in entries:
        data, _headers = BinaryMessageFormatV1.parse(fields[b"__data__"])
        event = SessionRequested.model_validate_json(data)
        if event.session_id == created["sessionId"]:
            assert event.greeting == "Round trip" and event.flow_id == flow_id
            # the agent builds the flow's providers before the user waits: they travel with the request
            assert event.providers == ProviderChoice(stt="deepgram/nova-3", tts="espeak", voice="en-gb")
            return
    raise AssertionError("session.requested not found on the stream")


async def test_the_user_token_may_not_publish_data_unless_the_flow_allows_it(
    client: httpx.AsyncClient, api_settings: ApiSettings
) -> None:
    # a user who may publish data can send a fake agent.ready or flow event to everyone in the room
    default = await _flow(client)
    created = (await client.post(f"/api/flows/{default}/sessions")).json()
    claims = jwt.decode(created["token"], api_settings.livekit_api_secret, algorithms=["HS256"])
    assert claims["video"]["canPublishData"] is False
    assert claims["video"]["canPublish"] is True and claims["video"]["canSubscribe"] is True  # audio still flows

    chatty = await client.post(
        "/api/flows", json={"name": "chat", "greeting": "Hi", "agentSettings": {"userCanPublishData": True}}
    )
    assert chatty.status_code == 201 and chatty.json()["agentSettings"]["userCanPublishData"] is True
    created = (await client.post(f"/api/flows/{chatty.json()['id']}/sessions")).json()
    claims = jwt.decode(created["token"], api_settings.livekit_api_secret, algorithms=["HS256"])
    assert claims["video"]["canPublishData"] is True


async def test_the_user_token_lasts_until_the_readiness_deadline_plus_a_margin_only(
    client: httpx.AsyncClient, api_settings: ApiSettings
) -> None:
    # long enough to join; a token that outlived its session could join (and re-create) the ended session's room
    response = await client.post(
        "/api/flows", json={"name": "quick", "greeting": "Hi", "agentSettings": {"readyTimeoutS": 20}}
    )
    created = (await client.post(f"/api/flows/{response.json()['id']}/sessions")).json()
    claims = jwt.decode(created["token"], api_settings.livekit_api_secret, algorithms=["HS256"])
    assert claims["exp"] - claims["nbf"] == 20 + api_settings.token_join_margin_s
    assert claims["exp"] - claims["nbf"] < api_settings.token_ttl_s
