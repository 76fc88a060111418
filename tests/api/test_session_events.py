"""SSE fan-out of status changes, ending a session, and the agent's flow-init endpoint."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
from fastapi import FastAPI
from faststream.redis.parser import BinaryMessageFormatV1
from redis.asyncio import Redis

from contracts.events import SessionEndRequested, SessionStageTimes, SessionStatusChanged
from contracts.streams import SESSION_END_REQUESTED
from services.api.settings import ApiSettings
from tests.api.conftest import new_flow


def _statuses(body: str) -> list[str]:
    return [json.loads(line[len("data: ") :])["status"] for line in body.splitlines() if line.startswith("data: ")]


async def _until_listening(app: FastAPI, session_id: str, deadline_s: float = 5) -> None:
    end = time.monotonic() + deadline_s
    while app.state.fanout.listener_count(session_id) == 0:
        assert time.monotonic() < end, "the SSE client never subscribed"
        await asyncio.sleep(0.01)


async def test_sse_sends_current_status_then_each_change_and_closes(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    flow_id = await new_flow(client)
    sid = (await client.post(f"/api/flows/{flow_id}/sessions")).json()["sessionId"]
    stream = asyncio.create_task(client.get(f"/api/sessions/{sid}/events", timeout=10))
    await _until_listening(api_app, sid)
    publisher = api_app.state.publisher
    moves = [
        ("pending", "dispatched"),
        ("pending", "dispatched"),
        ("agent_joined", "ready"),
        ("pending", "agent_joined"),
    ]
    moves += [("ready", "ended")]  # a duplicate and a late change in between: neither is sent
    for from_status, to_status in moves:
        await publisher.publish(SessionStatusChanged(session_id=sid, from_status=from_status, to_status=to_status))
    response = await asyncio.wait_for(stream, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert _statuses(response.text) == ["pending", "dispatched", "ready", "ended"]
    assert api_app.state.fanout.listener_count(sid) == 0


async def _new_session(client: httpx.AsyncClient) -> tuple[str, str]:
    """A requested session: its flow id and session id."""
    flow_id = await new_flow(client)
    return flow_id, (await client.post(f"/api/flows/{flow_id}/sessions")).json()["sessionId"]


async def _expire_in_the_store(api_app: FastAPI, flow_id: str, sid: str) -> None:
    """Write the session's row as the session store would, at 'expired' (reason 'late'), with no event."""
    import psycopg

    org_id = (await api_app.state.admission.snapshot(sid)).org_id
    async with await psycopg.AsyncConnection.connect(api_app.state.settings.database_url) as conn:
        await conn.execute(
            "INSERT INTO sessions (id, org_id, flow_id, status, reason) VALUES (%s, %s, %s, 'expired', 'late')",
            (sid, org_id, flow_id),
        )


async def test_late_client_of_a_terminal_session_gets_it_and_the_stream_closes(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    flow_id, sid = await _new_session(client)
    await _expire_in_the_store(api_app, flow_id, sid)
    response = await asyncio.wait_for(client.get(f"/api/sessions/{sid}/events"), timeout=10)
    assert _statuses(response.text) == ["expired"]
    assert '"reason":"late"' in response.text


def _frames(body: str) -> list[dict[str, Any]]:
    return [json.loads(line[len("data: ") :]) for line in body.splitlines() if line.startswith("data: ")]


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def test_sse_shows_when_the_user_could_hear_the_greeting_of_a_ready_session(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    import psycopg

    flow_id, sid = await _new_session(client)
    org_id = (await api_app.state.admission.snapshot(sid)).org_id
    now = datetime.now(UTC)
    heard = {
        "listener_subscribed_at": now - timedelta(seconds=3),
        "greeting_started_at": now - timedelta(seconds=2),
        "greeting_finished_at": now - timedelta(seconds=1),
    }
    async with await psycopg.AsyncConnection.connect(api_app.state.settings.database_url) as conn:
        await conn.execute(
            "INSERT INTO sessions (id, org_id, flow_id, status, requested_at, ready_at, listener_subscribed_at, "
            "greeting_started_at, greeting_finished_at) VALUES (%s, %s, %s, 'ready', %s, %s, %s, %s, %s)",
            (sid, org_id, flow_id, now - timedelta(seconds=5), now, *heard.values()),
        )
    stream = asyncio.create_task(client.get(f"/api/sessions/{sid}/events", timeout=10))
    await _until_listening(api_app, sid)
    ended_at = datetime.now(UTC)
    times = SessionStageTimes(requested_at=now - timedelta(seconds=5), ready_at=now, ended_at=ended_at, **heard)
    change = SessionStatusChanged(session_id=sid, from_status="ready", to_status="ended", stages=times)
    await api_app.state.publisher.publish(change)  # as the session store announces it: with the stage times
    ready, ended = _frames((await asyncio.wait_for(stream, timeout=10)).text)
    assert (ready["status"], ended["status"]) == ("ready", "ended")
    for frame in (ready, ended):  # the first frame from the session's row, the next from the announcement
        stages = frame["stages"]
        assert stages["listenerSubscribed"] == _iso(heard["listener_subscribed_at"]), frame
        assert stages["greetingStarted"] == _iso(heard["greeting_started_at"]), frame
        assert stages["greetingFinished"] == _iso(heard["greeting_finished_at"]), frame
        assert stages["ready"] == _iso(now), frame
    assert (ready["stages"]["ended"], ended["stages"]["ended"]) == (None, _iso(ended_at))


async def test_a_change_announced_before_the_client_subscribed_still_arrives(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    """The session store announces before it commits: a client can read the old status and miss the event."""
    flow_id, sid = await _new_session(client)
    stream = asyncio.create_task(client.get(f"/api/sessions/{sid}/events", timeout=10))
    await _until_listening(api_app, sid)
    await _expire_in_the_store(api_app, flow_id, sid)  # its announcement went out before this client listened
    # no event will come: only the stream's re-read can see it (heartbeats are 15 s apart)
    response = await asyncio.wait_for(stream, timeout=10)
    assert _statuses(response.text) == ["pending", "expired"]


async def test_slow_listener_is_dropped_not_the_process(api_app: FastAPI) -> None:
    fanout = api_app.state.fanout
    sid = uuid.uuid4().hex
    with fanout.listen(sid) as listener:
        for _ in range(listener.queue.maxsize + 1):
            fanout.deliver(SessionStatusChanged(session_id=sid, from_status="pending", to_status="dispatched"))
        assert fanout.listener_count(sid) == 0
        assert listener.queue.get_nowait() is None  # the marker that ends its stream


async def test_delete_requests_the_end(client: httpx.AsyncClient, api_redis_url: str) -> None:
    flow_id = await new_flow(client)
    sid = (await client.post(f"/api/flows/{flow_id}/sessions")).json()["sessionId"]
    response = await client.delete(f"/api/sessions/{sid}")
    assert response.status_code == 202 and response.json()["sessionId"] == sid
    redis = Redis.from_url(api_redis_url)
    try:
        entries = await redis.xrevrange(SESSION_END_REQUESTED, count=100)
    finally:
        await redis.aclose()
    ends = [SessionEndRequested.model_validate_json(BinaryMessageFormatV1.parse(e[b"__data__"])[0]) for _, e in entries]
    assert [e.reason for e in ends if e.session_id == sid] == ["ended by request"]


async def _session_with_credential(client: httpx.AsyncClient, api_app: FastAPI) -> tuple[str, str, str]:
    flow_id = await new_flow(client, greeting="Hi agent", definition={"steps": 3}, agentSettings={"tts": "offline"})
    sid = (await client.post(f"/api/flows/{flow_id}/sessions")).json()["sessionId"]
    request = await api_app.state.admission.snapshot(sid)
    return flow_id, sid, request.agent_credential


async def test_flow_init_with_the_sessions_credential(client: httpx.AsyncClient, api_app: FastAPI) -> None:
    flow_id, sid, credential = await _session_with_credential(client, api_app)
    response = await client.post(
        f"/internal/sessions/{sid}/flow-init", headers={"Authorization": f"Bearer {credential}"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["flowId"], body["greeting"], body["definition"]) == (flow_id, "Hi agent", {"steps": 3})
    assert body["agentSettings"]["tts"] == "offline"


async def test_flow_init_refuses_other_credentials(
    client: httpx.AsyncClient, api_app: FastAPI, api_settings: ApiSettings
) -> None:
    _flow_id, sid, credential = await _session_with_credential(client, api_app)
    _other_flow, other_sid, other_credential = await _session_with_credential(client, api_app)
    claims = jwt.decode(credential, options={"verify_signature": False})
    expired = jwt.encode(
        {**claims, "exp": datetime.now(UTC) - timedelta(seconds=5)}, api_settings.agent_credential_secret, "HS256"
    )
    forged = jwt.encode(claims, "not-the-secret", "HS256")
    cases = {
        "missing agent credential": None,
        "another session": other_credential,
        "expired": expired,
        "invalid agent credential": forged,
    }
    for message, token in cases.items():
        headers = {"Authorization": f"Bearer {token}" if token else ""}
        response = await client.post(f"/internal/sessions/{sid}/flow-init", headers=headers)
        assert response.status_code == 403, (message, response.text)
        assert message in response.json()["error"]
    unknown = uuid.uuid4().hex
    valid_for_unknown = jwt.encode({**claims, "sub": unknown}, api_settings.agent_credential_secret, "HS256")
    response = await client.post(
        f"/internal/sessions/{unknown}/flow-init", headers={"Authorization": f"Bearer {valid_for_unknown}"}
    )
    assert response.status_code == 404
    assert other_sid != sid
