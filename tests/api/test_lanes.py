"""The session POST's hot lane (services.api.hot_lane) answers exactly as FastAPI's own handler and middleware stack: a
plainly valid request gets the same answer (status, headers that matter, body), errors included, anything else is
FastAPI's (the same 422s), whichever way it went."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from contracts.routes import LIVEKIT_WEBHOOK_PATH
from devstack.livekit_sim.webhooks import sign
from services.api.app import ApiApp, create_app
from services.api.dependencies import get_flows
from services.api.hot_lane import HotLane
from services.api.settings import ApiSettings
from services.api.webhook_lane import WebhookLane
from tests.api.conftest import new_flow


@asynccontextmanager
async def _through_fastapi(app: FastAPI) -> AsyncIterator[None]:
    """FastAPI's handler for the block: any dependency override turns the shortcut off (here one that changes
    nothing)."""
    app.dependency_overrides[get_flows] = get_flows
    try:
        yield
    finally:
        app.dependency_overrides.pop(get_flows)


def _shape(response: httpx.Response) -> tuple[int, str, str | None, str | None, Any]:
    """Status, content type, Vary (CORS is on in dev mode), Retry-After and the body with each session's own values
    replaced by their kind."""
    body = response.json()
    if response.status_code == 202:
        body = {name: type(value).__name__ for name, value in body.items()}
    headers = response.headers
    return response.status_code, headers["content-type"], headers.get("vary"), headers.get("retry-after"), body


async def _both(app: FastAPI, send: Callable[[], Any]) -> tuple[httpx.Response, httpx.Response]:
    shortcut = await send()
    async with _through_fastapi(app):
        solved = await send()
    return shortcut, solved


async def test_a_plainly_valid_request_gets_fastapis_answer(api_app: FastAPI, client: httpx.AsyncClient) -> None:
    url = f"/api/flows/{await new_flow(client)}/sessions"
    for headers in ({}, {"Idempotency-Key": "k-1234"}):
        shortcut, solved = await _both(api_app, lambda h=headers: client.post(url, headers=h))
        assert _shape(shortcut) == _shape(solved), (shortcut.text, solved.text)
        assert shortcut.status_code == 202
        assert set(shortcut.json()) == {
            "sessionId",
            "roomName",
            "token",
            "livekitUrl",
            "status",
            "readyDeadline",
            "clientToken",
        }


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/api/flows/{flow}x%20y/sessions", {}),  # not an id: 422
        ("/api/flows/" + "f" * 65 + "/sessions", {}),  # too long an id: 422
        ("/api/flows/{flow}/sessions", {"Idempotency-Key": "has space"}),
        ("/api/flows/{flow}/sessions", {"Idempotency-Key": "x" * 201}),
        ("/api/flows/{flow}/sessions", {"Idempotency-Key": ""}),
    ],
)
async def test_anything_else_gets_fastapis_answer(
    api_app: FastAPI, client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> None:
    url = path.format(flow=await new_flow(client))
    shortcut, solved = await _both(api_app, lambda: client.post(url, headers=headers))
    assert shortcut.status_code in (400, 422), shortcut.text
    assert _shape(shortcut) == _shape(solved)


async def test_two_idempotency_keys_get_fastapis_answer(api_app: FastAPI, client: httpx.AsyncClient) -> None:
    url = f"/api/flows/{await new_flow(client)}/sessions"
    headers = [("Idempotency-Key", "first-key"), ("Idempotency-Key", "second-key")]
    shortcut, solved = await _both(api_app, lambda: client.post(url, headers=headers))
    assert _shape(shortcut) == _shape(solved), (shortcut.text, solved.text)


async def test_credentials_are_checked_either_way(api_app: FastAPI, anonymous: httpx.AsyncClient) -> None:
    for auth in ({}, {"Authorization": "Bearer ar_not-a-key-at-all-0123"}):
        shortcut, solved = await _both(api_app, lambda a=auth: anonymous.post("/api/flows/f1/sessions", headers=a))
        assert shortcut.status_code == 401
        assert _shape(shortcut) == _shape(solved)


async def test_the_answer_carries_vary_origin_as_the_cors_middleware_adds_it(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/api/flows/{await new_flow(client)}/sessions")
    assert response.status_code == 202
    assert response.headers["vary"] == "Origin"


async def test_an_unknown_flow_gets_fastapis_404(api_app: FastAPI, client: httpx.AsyncClient) -> None:
    url = f"/api/flows/f-{uuid.uuid4().hex}/sessions"
    shortcut, solved = await _both(api_app, lambda: client.post(url))
    assert shortcut.status_code == 404
    assert _shape(shortcut) == _shape(solved)


class _Broken:
    """Stands in for the app's minting: any use of it fails as a bug would."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"broken on purpose: {name}")


async def test_an_unexpected_error_gets_the_same_500_and_reaches_the_server(
    api_app: FastAPI, client: httpx.AsyncClient
) -> None:
    url = f"/api/flows/{await new_flow(client)}/sessions"
    minting = api_app.state.minting
    api_app.state.minting = _Broken()
    try:
        shortcut, solved = await _both(api_app, lambda: client.post(url))
        lane = _lane(api_app)
        sent: list[dict[str, Any]] = []

        async def send(message: Any) -> None:
            sent.append(message)

        async def receive() -> Any:
            return {"type": "http.request", "body": b"", "more_body": False}

        scope = _scope(url, [(b"authorization", client.headers["authorization"].encode())])
        args = lane.takes(scope)
        assert args is not None
        with pytest.raises(RuntimeError, match="broken on purpose"):  # as ServerErrorMiddleware re-raises: logged
            await lane.serve(scope, receive, send, args)
    finally:
        api_app.state.minting = minting
    assert shortcut.status_code == 500
    assert _shape(shortcut) == _shape(solved)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 500


def _lane(app: FastAPI) -> HotLane:
    assert isinstance(app, ApiApp)
    return next(lane for lane in app.lanes if isinstance(lane, HotLane))


def _scope(path: str, headers: list[tuple[bytes, bytes]], method: str = "POST", root_path: str = "") -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": root_path,
        "headers": headers,
        "query_string": b"",
        "client": ("127.0.0.1", 5000),
        "server": ("api.test", 80),
        "scheme": "http",
        "http_version": "1.1",
    }


@pytest.mark.parametrize(
    ("method", "headers", "root_path"),
    [
        ("GET", [], ""),  # another method: FastAPI's 405
        ("POST", [(b"origin", b"http://localhost:5173")], ""),  # a browser's call: CORS
        ("POST", [(b"content-length", b"12")], ""),  # a body: the body limit
        ("POST", [(b"transfer-encoding", b"chunked")], ""),  # a body of unknown length
        ("POST", [], "/behind-a-prefix"),  # a root path: the router's matching
    ],
)
def test_the_lane_leaves_to_fastapi_what_its_middleware_must_see(
    api_app: FastAPI, method: str, headers: list[tuple[bytes, bytes]], root_path: str
) -> None:
    lane = _lane(api_app)
    assert lane.takes(_scope("/api/flows/f1/sessions", [])) == ("f1", None)  # the same request, plainly valid
    assert lane.takes(_scope("/api/flows/f1/sessions", [(b"content-length", b"0")])) == ("f1", None)
    assert lane.takes(_scope("/api/flows/f1/sessions", headers, method, root_path)) is None
    assert lane.takes(_scope("/api/flows/f1/sessions/x", [])) is None  # another path


async def test_the_lifespan_runs_through_the_app_with_its_lanes(api_settings: ApiSettings) -> None:
    """uvicorn sends the lifespan through the app itself: no lane may take (or break on) a scope that is not HTTP."""
    app = create_app(api_settings)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    serving = asyncio.create_task(app(scope, inbox.get, outbox.put))
    try:
        started = await asyncio.wait_for(outbox.get(), timeout=30)
        assert started["type"] == "lifespan.startup.complete", started
        assert app.state.settings is api_settings  # what the lanes read
        await inbox.put({"type": "lifespan.shutdown"})
        stopped = await asyncio.wait_for(outbox.get(), timeout=30)
        assert stopped["type"] == "lifespan.shutdown.complete", stopped
    finally:
        await asyncio.wait_for(serving, timeout=30)


def _webhook_lane(app: FastAPI) -> WebhookLane:
    assert isinstance(app, ApiApp)
    return next(lane for lane in app.lanes if isinstance(lane, WebhookLane))


def _ack_shape(response: httpx.Response) -> tuple[int, str, str | None, Any]:
    return response.status_code, response.headers["content-type"], response.headers.get("vary"), response.json()


@pytest.mark.parametrize(
    ("body", "auth"),
    [
        ('{"event": "room_finished", "room": {"name": "session-%s"}}', "signed"),
        ('{"event": "room_started", "room": {"name": "session-%s"}}', "signed"),
        ('{"event": "room_finished", "room": {"name": "session-%s"}}', "forged"),
        ('{"event": "room_finished", "room": {"name": "session-%s"}}', None),
        ("not json %s", "signed"),
    ],
    ids=["acted_on", "ignored", "forged", "unsigned", "not_a_webhook"],
)
async def test_a_webhook_gets_fastapis_answer(
    api_app: FastAPI, anonymous: httpx.AsyncClient, body: str, auth: str | None
) -> None:
    text = body % uuid.uuid4().hex
    headers = {"Content-Type": "application/webhook+json"}
    if auth is not None:
        headers["Authorization"] = sign(text, "devkey", "secret" if auth == "signed" else "not-the-secret")
    lane, solved = await _both(api_app, lambda: anonymous.post(LIVEKIT_WEBHOOK_PATH, content=text, headers=headers))
    assert _ack_shape(lane) == _ack_shape(solved), (lane.text, solved.text)
    assert lane.status_code == {"signed": 400 if text.startswith("not") else 200, "forged": 401, None: 401}[auth]


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-length", b"10"), (b"origin", b"http://localhost:5173")],  # a browser's call: CORS
        [(b"transfer-encoding", b"chunked")],  # a body of unknown length
        [],  # no Content-Length at all
        [(b"content-length", b"99999999")],  # over the limit: the body limit's 413
        [(b"content-length", b"10"), (b"authorization", b"a"), (b"authorization", b"b")],  # which one?
    ],
    ids=["origin", "chunked", "no_length", "too_large", "two_authorizations"],
)
def test_the_webhook_lane_leaves_to_fastapi_what_its_middleware_must_see(
    api_app: FastAPI, headers: list[tuple[bytes, bytes]]
) -> None:
    lane = _webhook_lane(api_app)
    assert lane.takes(_scope(LIVEKIT_WEBHOOK_PATH, [(b"content-length", b"10"), (b"authorization", b"t")])) == ("t",)
    assert lane.takes(_scope(LIVEKIT_WEBHOOK_PATH, headers)) is None
    assert lane.takes(_scope("/api/livekit/webhooks", [(b"content-length", b"10")])) is None


async def test_a_body_that_does_not_arrive_in_time_gets_the_body_limits_408(api_app: FastAPI) -> None:
    lane = _webhook_lane(api_app)
    lane.timeout_s, timeout_s = 0.05, lane.timeout_s
    sent: list[dict[str, Any]] = []
    never = asyncio.Event()

    async def receive() -> Any:
        await never.wait()  # the client never sends its body

    async def send(message: Any) -> None:
        sent.append(message)

    try:
        scope = _scope(LIVEKIT_WEBHOOK_PATH, [(b"content-length", b"10")])
        args = lane.takes(scope)
        assert args is not None
        await asyncio.wait_for(lane.serve(scope, receive, send, args), timeout=5)
    finally:
        lane.timeout_s = timeout_s
    assert sent[0]["status"] == 408
    headers = dict(sent[0]["headers"])
    assert headers[b"connection"] == b"close"
    assert headers[b"vary"] == b"Origin"
    assert b"not received within 0.05 s" in sent[1]["body"]
