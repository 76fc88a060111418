"""The session POST's shortcut (SessionCreateRoute) answers exactly as FastAPI's own handler: a plainly valid request
gets the same answer, anything else is FastAPI's (the same 422s), whichever way it went."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.api.dependencies import get_flows
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


def _shape(response: httpx.Response) -> tuple[int, str, Any]:
    """Status, content type and the body with each session's own values replaced by their kind."""
    body = response.json()
    if response.status_code == 202:
        body = {name: type(value).__name__ for name, value in body.items()}
    return response.status_code, response.headers["content-type"], body


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
