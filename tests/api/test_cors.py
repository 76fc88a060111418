"""CORS: preflights answered for allowed origins only; '*' and malformed origins refuse to start outside dev."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from starlette.datastructures import MutableHeaders

from services.api.app import create_app
from services.api.cors import with_vary_origin
from services.api.settings import ApiSettings

PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
}


def _production(**overrides: str) -> ApiSettings:
    return ApiSettings(dev_mode=False, livekit_api_secret="s" * 40, agent_credential_secret="a" * 40, **overrides)


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test")


async def test_dev_mode_allows_local_origins_with_a_complete_preflight(anonymous: httpx.AsyncClient) -> None:
    for origin in ("http://127.0.0.1:5173", "http://localhost:8000", "http://[::1]:3000"):
        response = await anonymous.options("/api/flows/f1/sessions", headers={"Origin": origin, **PREFLIGHT})
        assert response.status_code == 200, (origin, response.text)
        assert response.headers["access-control-allow-origin"] == origin
        assert "POST" in response.headers["access-control-allow-methods"]
        allowed = {h.strip() for h in response.headers["access-control-allow-headers"].lower().split(",")}
        assert {"authorization", "content-type", "idempotency-key"} <= allowed
        assert "origin" in response.headers["vary"].lower()


async def test_an_origin_not_allowed_gets_no_allow_origin(anonymous: httpx.AsyncClient) -> None:
    for origin in ("https://evil.example", "http://127.0.0.1.evil.example", "http://localhost:8000.evil.example"):
        response = await anonymous.options("/api/sessions/s1/events", headers={"Origin": origin, **PREFLIGHT})
        assert not [h for h in response.headers if h.startswith("access-control-")], origin
        assert response.status_code == 400 and "CORS_ALLOW_ORIGINS" in response.text
        assert "CORS_ALLOW_ORIGINS" in response.json()["error"]  # the API's error body, as documented


async def test_a_refused_preflight_method_is_the_json_error_body(anonymous: httpx.AsyncClient) -> None:
    headers = {"Origin": "http://localhost:5173", "Access-Control-Request-Method": "TRACE"}
    response = await anonymous.options("/api/flows", headers=headers)
    assert response.status_code == 400
    assert "method" in response.json()["error"].lower()


async def test_answers_and_errors_carry_the_header_for_an_allowed_origin(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/api/flows", headers={"Origin": "http://localhost:5173"})
    assert response.status_code == 401  # the page can read why
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "retry-after" in response.headers["access-control-expose-headers"].lower()


async def test_production_allows_only_the_configured_origins() -> None:
    app = create_app(_production(cors_allow_origins="https://app.example, https://admin.example"))
    async with _client(app) as client:
        ok = await client.options("/api/flows/f1/sessions", headers={"Origin": "https://app.example", **PREFLIGHT})
        local = await client.options("/api/flows/f1/sessions", headers={"Origin": "http://localhost:5173", **PREFLIGHT})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in local.headers


async def test_production_default_allows_no_origin() -> None:
    app = create_app(_production())
    async with _client(app) as client:
        response = await client.options(
            "/api/flows/f1/sessions", headers={"Origin": "http://localhost:5173", **PREFLIGHT}
        )
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("*", "lets every website call this API"),
        ("https://app.example/", "is not an origin"),
        ("app.example", "is not an origin"),
        ("https://app.example/path", "is not an origin"),
        ("ftp://app.example", "is not an origin"),
    ],
)
def test_a_wildcard_or_malformed_origin_refuses_to_start_outside_dev(value: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        _production(cors_allow_origins=value)


def test_a_wildcard_is_allowed_in_dev_mode() -> None:
    assert ApiSettings(dev_mode=True, cors_allow_origins="*").cors_allow_origins == "*"


async def test_an_answer_to_a_request_without_origin_varies_on_origin(anonymous: httpx.AsyncClient) -> None:
    """Caches must not serve it to a page of some origin: the CORS headers differ by Origin."""
    response = await anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.headers.get_list("vary") == ["Origin"]
    assert not [h for h in response.headers if h.startswith("access-control-")]


@pytest.mark.parametrize(
    "raw",
    [
        [],
        [(b"content-type", b"application/json")],
        [(b"vary", b"Accept-Encoding"), (b"content-length", b"2")],
        [(b"vary", b"Accept"), (b"x-a", b"1"), (b"vary", b"Cookie")],
    ],
)
def test_vary_origin_is_added_as_starlette_adds_it(raw: list[tuple[bytes, bytes]]) -> None:
    expected = MutableHeaders(raw=list(raw))
    expected["Vary"] = ", ".join([*expected.getlist("Vary"), "Origin"])
    assert with_vary_origin(raw) == expected.raw
