"""Input PostgreSQL or JSON cannot hold (NUL, lone surrogates, NaN, deep or huge free-form JSON) is a 4xx naming the
field, never a 500 and never stored; a row stored before these limits existed no longer breaks reads."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from services.api import schemas, webhook_schemas
from services.api.storable import MAX_JSON_DEPTH, MAX_JSON_VALUES
from tests.api.conftest import new_flow


def _nested(levels: int) -> dict[str, object]:
    value: dict[str, object] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def _body(**changes: object) -> dict[str, object]:
    return {"name": f"flow-{uuid.uuid4().hex}", "greeting": "Hello", **changes}


# (raw JSON body text: JSON escapes reach the server as written, the field the error must name)
UNSTORABLE_BODIES = [
    ('{"name": "a\\u0000b", "greeting": "hi"}', "name"),
    ('{"name": "ok", "greeting": "hi\\u0000"}', "greeting"),
    ('{"name": "ok", "greeting": "hi", "agentSettings": {"stt": "x\\u0000"}}', "agentSettings.stt"),
    ('{"name": "ok", "greeting": "hi", "agentSettings": {"language": "\\ud800"}}', "agentSettings.language"),
    ('{"name": "\\udfff", "greeting": "hi"}', "name"),
    ('{"name": "ok", "greeting": "hi", "definition": {"steps": [{"say": "a\\u0000"}]}}', "definition"),
    ('{"name": "ok", "greeting": "hi", "definition": {"k\\u0000": 1}}', "definition"),
    ('{"name": "ok", "greeting": "hi", "definition": {"a": {"\\ud800": 1}}}', "definition"),
    ('{"name": "ok", "greeting": "hi", "definition": {"a": "\\udc00"}}', "definition"),
    ('{"name": "ok", "greeting": "hi", "definition": {"a": NaN}}', "definition"),
    ('{"name": "ok", "greeting": "hi", "definition": {"a": [Infinity]}}', "definition"),
    ('{"name": "ok", "greeting": "hi", "definition": {"a": 1e999}}', "definition"),
]


async def _flow_names(client: httpx.AsyncClient) -> set[str]:
    response = await client.get("/api/flows", params={"limit": 500})
    assert response.status_code == 200, response.text
    return {flow["name"] for flow in response.json()["flows"]}


@pytest.mark.parametrize(("content", "field"), UNSTORABLE_BODIES)
async def test_unstorable_text_is_422_naming_the_field(client: httpx.AsyncClient, content: str, field: str) -> None:
    before = await _flow_names(client)
    headers = {"content-type": "application/json"}
    created = await client.post("/api/flows", content=content.encode(), headers=headers)
    assert created.status_code == 422, created.text
    assert created.json()["detail"][0]["field"] == field, created.text
    flow_id = await new_flow(client)
    patched = await client.patch(f"/api/flows/{flow_id}", content=content.encode(), headers=headers)
    assert patched.status_code == 422, patched.text
    assert field in patched.json()["error"]
    assert await _flow_names(client) == before | {"support"}  # nothing stored but the good flow made here


async def test_definition_deeper_than_the_limit_is_422(client: httpx.AsyncClient) -> None:
    at_limit = await client.post("/api/flows", json=_body(definition=_nested(MAX_JSON_DEPTH)))
    assert at_limit.status_code == 201, at_limit.text
    for levels in (MAX_JSON_DEPTH + 1, 300):
        response = await client.post("/api/flows", json=_body(definition=_nested(levels)))
        assert response.status_code == 422, response.text
        assert f"more than {MAX_JSON_DEPTH} levels" in response.json()["error"]


async def test_definition_with_too_many_values_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/flows", json=_body(definition={"v": [0] * MAX_JSON_VALUES}))
    assert response.status_code == 422, response.text
    assert f"more than {MAX_JSON_VALUES:,} values" in response.json()["error"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"name": "x", "greeting": "hi", "definition": {"n": ' + "[" * 20_000 + "]" * 20_000 + "}}", "nested"),
        ('{"name": "x", "greeting": "hi", "definition": {"n": ' + "9" * 5_000 + "}}", "digits"),
    ],
    ids=["too-deep-to-parse", "too-many-digits"],
)
async def test_json_the_parser_refuses_is_400_saying_why(client: httpx.AsyncClient, content: str, reason: str) -> None:
    response = await client.post("/api/flows", content=content.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert "malformed JSON body" in response.json()["error"] and reason in response.json()["error"]


async def test_a_route_s_own_400_keeps_its_message(anonymous: httpx.AsyncClient) -> None:
    headers = {"authorization": "Bearer not-checked-before-the-body"}
    response = await anonymous.post("/api/livekit/webhook", content=b"\xff\xfe", headers=headers)
    assert response.status_code == 400, response.text
    assert "UTF-8" in response.json()["error"]


ID_ROUTES = [
    ("GET", "/api/flows/{id}", "flow_id"),
    ("HEAD", "/api/flows/{id}", "flow_id"),
    ("PATCH", "/api/flows/{id}", "flow_id"),
    ("POST", "/api/flows/{id}/sessions", "flow_id"),
    ("POST", "/api/flows/{id}/test-audio", "flow_id"),
    ("GET", "/api/sessions/{id}", "session_id"),
    ("DELETE", "/api/sessions/{id}", "session_id"),
    ("GET", "/api/sessions/{id}/events", "session_id"),
    ("POST", "/api/sessions/{id}/watch", "session_id"),
    ("POST", "/internal/sessions/{id}/flow-init", "session_id"),
]


@pytest.mark.parametrize(("method", "path", "field"), ID_ROUTES)
async def test_nul_in_a_path_id_is_422(client: httpx.AsyncClient, method: str, path: str, field: str) -> None:
    body = {"role": "monitor"} if path.endswith("/watch") else {"name": "x"} if method == "PATCH" else None
    response = await client.request(method, path.replace("{id}", "abc%00def"), json=body)
    assert response.status_code == 422, response.text
    if method != "HEAD":
        assert response.json()["detail"][0]["field"] == f"path.{field}"


async def test_nul_in_a_query_parameter_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/sessions/abc/events?access_token=a%00b")
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["field"] == "query.access_token"


def test_every_request_body_checks_its_text(api_app: FastAPI) -> None:
    """A body model added later gets the same check: every documented request body is a RequestModel."""
    bodies = [
        operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        for operations in api_app.openapi()["paths"].values()
        for operation in operations.values()
        if "requestBody" in operation
    ]
    assert bodies, "no request body documented"
    for name in bodies:
        model = getattr(schemas, name, None) or getattr(webhook_schemas, name)
        assert issubclass(model, schemas.RequestModel), name


def test_every_path_and_string_query_parameter_is_constrained(api_app: FastAPI) -> None:
    """Ids and query strings reach PostgreSQL and Redis: each documents (and enforces) the characters it takes."""
    for path, operations in api_app.openapi()["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", ()):
                if parameter["in"] not in ("path", "query"):
                    continue
                options = parameter["schema"].get("anyOf", [parameter["schema"]])
                for option in options:
                    if option.get("type") == "string" and "enum" not in option:  # an enum is constrained already
                        assert "pattern" in option, (method, path, parameter["name"])
