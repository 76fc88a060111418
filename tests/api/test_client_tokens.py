"""The clientToken of a 202: reads, follows (also as ?access_token=) and ends its own session; nothing else."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import httpx
import jwt
from fastapi import FastAPI

from contracts.events import SessionStatusChanged, utc_now
from services.api.client_tokens import ClientTokens
from tests.api.conftest import new_flow


async def _session(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post(f"/api/flows/{await new_flow(client)}/sessions")
    assert response.status_code == 202, response.text
    return dict(response.json())


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_client_token_reads_and_ends_its_own_session(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    session = await _session(client)
    sid, token = session["sessionId"], session["clientToken"]
    read = await anonymous.get(f"/api/sessions/{sid}", headers=_bearer(token))
    assert read.status_code == 200 and read.json()["sessionId"] == sid
    ended = await anonymous.delete(f"/api/sessions/{sid}", headers=_bearer(token))
    assert ended.status_code == 202 and ended.json()["sessionId"] == sid


async def test_a_client_token_is_refused_for_another_session(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    mine, other = await _session(client), await _session(client)
    for method, path in (
        ("GET", f"/api/sessions/{other['sessionId']}"),
        ("DELETE", f"/api/sessions/{other['sessionId']}"),
        ("GET", f"/api/sessions/{other['sessionId']}/events"),
    ):
        response = await anonymous.request(method, path, headers=_bearer(mine["clientToken"]))
        assert response.status_code == 403, (method, path, response.text)
        assert "issued for another session" in response.json()["error"]
    response = await anonymous.get(f"/api/sessions/{other['sessionId']}/events?access_token={mine['clientToken']}")
    assert response.status_code == 403


async def test_a_client_token_is_refused_on_every_other_route(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    session = await _session(client)
    token, sid, flow_id = session["clientToken"], session["sessionId"], await new_flow(client)
    for method, path, body in (
        ("GET", "/api/flows", None),
        ("POST", f"/api/sessions/{sid}/watch", {"role": "monitor"}),
        ("POST", f"/api/flows/{flow_id}/sessions", None),
    ):
        response = await anonymous.request(method, path, json=body, headers=_bearer(token))
        assert response.status_code == 403, (path, response.text)
        assert "a client token only reads, follows" in response.json()["error"]
    # the query parameter opens the event stream only
    assert (await anonymous.get(f"/api/sessions/{sid}?access_token={token}")).status_code == 401


async def test_an_expired_or_forged_client_token_is_401(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, api_app: FastAPI
) -> None:
    session = await _session(client)
    sid, org_id = session["sessionId"], (await api_app.state.admission.snapshot(session["sessionId"])).org_id
    tokens: ClientTokens = api_app.state.client_tokens
    expired = tokens.mint(sid, org_id, now=utc_now() - timedelta(seconds=tokens.ttl_s + 5))
    response = await anonymous.get(f"/api/sessions/{sid}", headers=_bearer(expired))
    assert response.status_code == 401 and "client token has expired" in response.json()["error"]
    forged = ClientTokens.from_secret("another secret", 600).mint(sid, org_id)
    response = await anonymous.get(f"/api/sessions/{sid}/events?access_token={forged}")
    assert response.status_code == 401 and "invalid client token" in response.json()["error"]


async def test_sse_with_access_token_streams_to_the_terminal_status_without_authorization(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, api_app: FastAPI
) -> None:
    session = await _session(client)
    sid = session["sessionId"]
    assert "authorization" not in anonymous.headers
    stream = asyncio.create_task(anonymous.get(f"/api/sessions/{sid}/events?access_token={session['clientToken']}"))
    deadline = time.monotonic() + 5
    while api_app.state.fanout.listener_count(sid) == 0:
        assert time.monotonic() < deadline and not stream.done(), "the SSE client never subscribed"
        await asyncio.sleep(0.01)
    for from_status, to_status in (("pending", "dispatched"), ("dispatched", "ready"), ("ready", "ended")):
        await api_app.state.publisher.publish(
            SessionStatusChanged(session_id=sid, from_status=from_status, to_status=to_status)
        )
    response = await asyncio.wait_for(stream, timeout=10)
    assert response.status_code == 200
    statuses = [json.loads(line[6:])["status"] for line in response.text.splitlines() if line.startswith("data: ")]
    assert statuses == ["pending", "dispatched", "ready", "ended"]


async def test_an_idempotent_replay_returns_the_same_client_token(client: httpx.AsyncClient) -> None:
    flow_id = await new_flow(client)
    headers = {"Idempotency-Key": f"replay-{time.monotonic_ns()}"}
    first = await client.post(f"/api/flows/{flow_id}/sessions", headers=headers)
    again = await client.post(f"/api/flows/{flow_id}/sessions", headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["clientToken"] == again.json()["clientToken"]


def test_a_minted_client_token_is_a_standard_hs256_jwt() -> None:
    tokens = ClientTokens.from_secret("a secret of the deployment", 900)
    now = utc_now()
    token = tokens.mint("s1", "o1", now)
    claims = jwt.decode(token, tokens.key, algorithms=["HS256"], audience="agentready-client")
    assert claims == {
        "sub": "s1",
        "org": "o1",
        "aud": "agentready-client",
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + 900,
    }
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    assert tokens.org_for(token, "s1") == "o1"
    # never accepted as the agent's credential, nor the other way round: another key and another audience
    assert ClientTokens.from_secret("a secret of the deployment", 900).key != b"a secret of the deployment"


async def test_an_api_key_is_never_taken_from_the_url(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, api_key: str
) -> None:
    sid = (await _session(client))["sessionId"]
    response = await anonymous.get(f"/api/sessions/{sid}/events?access_token={api_key}")
    assert response.status_code == 401 and "takes a session's clientToken only" in response.json()["error"]
