"""Scopes of secret keys: a key may only do what it was created for; keys from before scopes keep full access."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fastapi import FastAPI

from services.api.admin import KeyRequest, create_key
from services.api.auth import hash_key
from services.api.migrations import MIGRATIONS
from services.api.scopes import ALL_SCOPES, DEFAULT_SCOPES, OPS
from services.runtime.migrations import apply_migrations
from tests.api.browser_access import new_org, org_flow
from tests.api.conftest import http_client


async def _session_of(app: FastAPI, key: str, flow_id: str) -> str:
    async with http_client(app, key) as client:
        response = await client.post(f"/api/flows/{flow_id}/sessions")
    assert response.status_code == 202, response.text
    return str(response.json()["sessionId"])


async def test_a_default_key_cannot_mint_an_admin_watcher_token(api_app: FastAPI, database_url: str) -> None:
    org = await new_org(database_url)
    default_key, _ = await create_key(database_url, org.name)  # no --scope: the default scopes
    sid = await _session_of(api_app, default_key, await org_flow(api_app, org))
    async with http_client(api_app, default_key) as client:
        monitor = await client.post(f"/api/sessions/{sid}/watch", json={"role": "monitor"})
        admin = await client.post(f"/api/sessions/{sid}/watch", json={"role": "admin"})
        supervisor = await client.post(f"/api/sessions/{sid}/watch", json={"role": "supervisor"})
    assert monitor.status_code == 200, monitor.text
    assert admin.status_code == 403 and "lacks the scope 'watch:admin'" in admin.json()["error"]
    assert supervisor.status_code == 403 and "'watch:supervisor'" in supervisor.json()["error"]
    async with http_client(api_app, org.secret_key) as client:  # a key with watch:admin may
        assert (await client.post(f"/api/sessions/{sid}/watch", json={"role": "admin"})).status_code == 200


async def test_a_sessions_only_key_cannot_touch_flows_and_a_flows_only_key_cannot_start_sessions(
    api_app: FastAPI, database_url: str
) -> None:
    org = await new_org(database_url)
    flow_id = await org_flow(api_app, org)
    sessions_key, _ = await create_key(database_url, org.name, request=KeyRequest(scopes=["sessions"]))
    flows_key, _ = await create_key(database_url, org.name, request=KeyRequest(scopes=["flows"]))
    async with http_client(api_app, sessions_key) as client:
        assert (await client.post(f"/api/flows/{flow_id}/sessions")).status_code == 202
        refused = await client.patch(f"/api/flows/{flow_id}", json={"greeting": "changed"})
        assert refused.status_code == 403 and "lacks the scope 'flows'" in refused.json()["error"]
        assert (await client.get("/api/flows")).status_code == 403
    async with http_client(api_app, flows_key) as client:
        assert (await client.get(f"/api/flows/{flow_id}")).json()["greeting"] == "Hello there"
        refused = await client.post(f"/api/flows/{flow_id}/sessions")
        assert refused.status_code == 403 and "'sessions'" in refused.json()["error"]


def test_new_secret_keys_get_the_default_scopes_unless_told() -> None:
    assert DEFAULT_SCOPES == ("sessions", "flows", "watch:monitor")
    assert set(DEFAULT_SCOPES) < set(ALL_SCOPES)


@pytest.fixture
def fresh_database_url(database_url: str) -> Iterator[str]:
    """An empty database beside the tests' one, dropped afterwards."""
    name = f"scopes_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_keys_created_before_scopes_keep_every_scope(fresh_database_url: str) -> None:
    before_scopes = [m for m in MIGRATIONS if m.version < 4]
    key = "ar_" + uuid.uuid4().hex
    async with await psycopg.AsyncConnection.connect(fresh_database_url, autocommit=True) as conn:
        await apply_migrations(conn, "api", before_scopes)
        await conn.execute("INSERT INTO organisations (id, name) VALUES ('o1', 'old')")
        await conn.execute(
            "INSERT INTO api_keys (id, org_id, key_hash, key_prefix) VALUES ('k1', 'o1', %s, 'ar_x')", (hash_key(key),)
        )
        await apply_migrations(conn, "api", MIGRATIONS)
        cur = await conn.execute("SELECT kind, scopes FROM api_keys WHERE id = 'k1'")
        # every scope there was then; ``ops`` (operators' views, added later) is never given without being asked for
        assert await cur.fetchone() == ("secret", [s for s in ALL_SCOPES if s != OPS])
