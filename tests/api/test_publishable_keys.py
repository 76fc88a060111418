"""Publishable keys (pk_): they start sessions of their flows, from their origins, at a bounded rate; nothing else."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI

from services.api.admin import KeyRequest, create_key
from services.api.settings import ApiSettings
from tests.api.browser_access import PAGE_ORIGIN, browser, new_org, org_flow, publishable_key


async def test_a_publishable_key_starts_a_session_of_its_flow_from_its_origin(
    api_app: FastAPI, database_url: str
) -> None:
    org = await new_org(database_url)
    flow_id = await org_flow(api_app, org)
    key = await publishable_key(database_url, org, [flow_id])
    assert key.startswith("pk_")
    async with browser(api_app, key) as page:
        response = await page.post(f"/api/flows/{flow_id}/sessions")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["roomName"] == f"session-{body['sessionId']}" and body["token"] and body["clientToken"]


async def test_a_publishable_key_is_refused_for_another_flow(api_app: FastAPI, database_url: str) -> None:
    org = await new_org(database_url)
    listed, other = await org_flow(api_app, org), await org_flow(api_app, org)
    key = await publishable_key(database_url, org, [listed])
    async with browser(api_app, key) as page:
        response = await page.post(f"/api/flows/{other}/sessions")
    assert response.status_code == 403
    assert f"cannot start sessions of flow {other!r}" in response.json()["error"]


async def test_a_publishable_key_is_refused_from_another_origin_or_without_one(
    api_app: FastAPI, database_url: str
) -> None:
    org = await new_org(database_url)
    flow_id = await org_flow(api_app, org)
    key = await publishable_key(database_url, org, [flow_id])
    async with browser(api_app, key, origin="https://evil.example") as page:
        response = await page.post(f"/api/flows/{flow_id}/sessions")
    assert response.status_code == 403 and "not allowed from origin 'https://evil.example'" in response.json()["error"]
    async with browser(api_app, key, origin=PAGE_ORIGIN + ":8443") as page:  # exact match: another port, another origin
        assert (await page.post(f"/api/flows/{flow_id}/sessions")).status_code == 403
    async with browser(api_app, key) as page:
        del page.headers["Origin"]
        response = await page.post(f"/api/flows/{flow_id}/sessions")
    assert response.status_code == 403 and "no Origin header" in response.json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/flows", None),
        ("POST", "/api/flows", {"name": "x", "greeting": "hi"}),
        ("GET", "/api/sessions/{sid}", None),
        ("DELETE", "/api/sessions/{sid}", None),
        ("GET", "/api/sessions/{sid}/events", None),
        ("POST", "/api/sessions/{sid}/watch", {"role": "monitor"}),
        ("POST", "/api/flows/{flow}/test-audio", None),
    ],
)
async def test_a_publishable_key_is_refused_on_every_other_route(
    api_app: FastAPI, database_url: str, method: str, path: str, body: object
) -> None:
    org = await new_org(database_url)
    flow_id = await org_flow(api_app, org)
    key = await publishable_key(database_url, org, [flow_id])
    async with browser(api_app, key) as page:
        sid = (await page.post(f"/api/flows/{flow_id}/sessions")).json()["sessionId"]
        response = await page.request(method, path.format(sid=sid, flow=flow_id), json=body)
    assert response.status_code == 403, response.text
    assert "publishable keys (pk_) can only start sessions" in response.json()["error"]


async def test_a_publishable_key_is_rate_limited_per_client_address(
    api_app: FastAPI, api_settings: ApiSettings, database_url: str
) -> None:
    org = await new_org(database_url)
    flow_id = await org_flow(api_app, org)
    key = await publishable_key(database_url, org, [flow_id])
    limit = api_settings.publishable_rate_per_min
    async with browser(api_app, key) as page:
        statuses = [(await page.post(f"/api/flows/{flow_id}/sessions")).status_code for _ in range(limit)]
        assert statuses == [202] * limit
        over = await page.post(f"/api/flows/{flow_id}/sessions")
    assert over.status_code == 429 and "too many sessions started from this address" in over.json()["error"]
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    async with browser(api_app, key, address="198.51.100.9") as neighbour:  # another address has its own budget
        assert (await neighbour.post(f"/api/flows/{flow_id}/sessions")).status_code == 202


async def test_create_key_refuses_incomplete_or_mixed_publishable_requests(database_url: str) -> None:
    org = f"cli-{uuid.uuid4().hex[:8]}"
    cases = [
        (KeyRequest(publishable=True, flow_ids=["f"]), "needs the flows it may start"),
        (KeyRequest(publishable=True, origins=[PAGE_ORIGIN]), "needs the flows it may start"),
        (KeyRequest(publishable=True, flow_ids=["f"], origins=["https://app.example/path"]), "is not an origin"),
        (KeyRequest(publishable=True, flow_ids=["f"], origins=[PAGE_ORIGIN], scopes=["flows"]), "have no scopes"),
        (KeyRequest(flow_ids=["f"]), "add --publishable"),
        (KeyRequest(scopes=["everything"]), "unknown scope(s) everything"),
    ]
    for request, problem in cases:
        with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
            await create_key(database_url, org, request=request)
    with pytest.raises(ValueError, match="start with 'pk_'"):
        await create_key(database_url, org, "ar_0123456789abcdefgh", KeyRequest(True, None, ["f"], [PAGE_ORIGIN]))


async def test_create_key_again_with_the_same_publishable_key_updates_its_flows_and_origins(
    api_app: FastAPI, database_url: str
) -> None:
    org = await new_org(database_url)
    first, second = await org_flow(api_app, org), await org_flow(api_app, org)
    given = "pk_" + uuid.uuid4().hex
    for flow_id in (first, second):  # as make dev does at every start: the key stays, its grant follows
        request = KeyRequest(publishable=True, flow_ids=[flow_id], origins=[PAGE_ORIGIN])
        assert (await create_key(database_url, org.name, given, request))[0] == given
    async with browser(api_app, given) as page:
        assert (await page.post(f"/api/flows/{second}/sessions")).status_code == 202
        assert (await page.post(f"/api/flows/{first}/sessions")).status_code == 403


async def test_an_idempotency_key_of_one_browser_never_replays_another_browsers_session(
    api_app: FastAPI, database_url: str
) -> None:
    org = await new_org(database_url)
    flow_id = await org_flow(api_app, org)
    key = await publishable_key(database_url, org, [flow_id])
    headers = {"Idempotency-Key": f"checkout-{uuid.uuid4().hex}"}
    async with browser(api_app, key) as first, browser(api_app, key, address="198.51.100.20") as second:
        mine = (await first.post(f"/api/flows/{flow_id}/sessions", headers=headers)).json()
        retry = (await first.post(f"/api/flows/{flow_id}/sessions", headers=headers)).json()
        theirs = (await second.post(f"/api/flows/{flow_id}/sessions", headers=headers)).json()
    assert retry["sessionId"] == mine["sessionId"] and retry["clientToken"] == mine["clientToken"]
    assert theirs["sessionId"] != mine["sessionId"] and theirs["clientToken"] != mine["clientToken"]
