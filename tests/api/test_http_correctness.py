"""HTTP details a client or a proxy relies on: HEAD, 405 with a complete Allow, no redirect built from the Host
header, and an OpenAPI document that describes the error body the API really returns."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from services.api.schemas import ErrorBody
from tests.api.conftest import new_flow


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_head_on_health_routes(anonymous: httpx.AsyncClient, path: str) -> None:
    response = await anonymous.head(path)
    assert response.status_code == 200, response.text


async def test_head_on_cheap_reads(client: httpx.AsyncClient) -> None:
    flow_id = await new_flow(client)
    session_id = (await client.post(f"/api/flows/{flow_id}/sessions")).json()["sessionId"]
    for path in ("/api/flows", f"/api/flows/{flow_id}", f"/api/sessions/{session_id}"):
        assert (await client.head(path)).status_code == 200, path
    assert (await client.head("/api/flows/no-such-flow")).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/flows", "GET, HEAD, POST"),
        ("DELETE", "/api/flows/some-flow", "GET, HEAD, PATCH"),
        ("OPTIONS", "/api/sessions/some-session", "DELETE, GET, HEAD"),
        ("GET", "/api/flows/some-flow/sessions", "POST"),
        ("POST", "/healthz", "GET, HEAD"),
    ],
)
async def test_405_allow_lists_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allowed
    ErrorBody.model_validate(response.json())


async def test_no_redirect_echoes_a_hostile_host(client: httpx.AsyncClient) -> None:
    for path in ("/api/flows/", "/healthz/", "/api/sessions/x/"):
        response = await client.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
        assert response.status_code == 404, (path, response.status_code)
        assert "location" not in response.headers
        ErrorBody.model_validate(response.json())


def _responses(api_app: FastAPI) -> list[tuple[str, str, dict[str, object]]]:
    schema = api_app.openapi()
    return [
        (f"{method.upper()} {path}", status, answer)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        for status, answer in operation["responses"].items()
    ]


async def test_openapi_documents_the_error_body_returned(api_app: FastAPI) -> None:
    schemas = api_app.openapi()["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for operation, status, answer in _responses(api_app):
        if status.startswith(("4", "5")):
            assert answer["content"] == {"application/json": {"schema": error_ref}}, (operation, status)
    operations = {operation for operation, status, _ in _responses(api_app) if status == "4XX"}
    assert len(operations) == len({operation for operation, _, _ in _responses(api_app)})


async def test_a_validation_error_has_the_documented_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/flows", json={"name": "", "greeting": 7, "extra": True})
    assert response.status_code == 422
    body = ErrorBody.model_validate(response.json())
    assert {d.field for d in body.detail or ()} == {"name", "greeting", "extra"}
