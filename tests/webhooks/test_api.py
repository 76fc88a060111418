"""``/api/webhooks`` on the in-process API (real PostgreSQL): register, list, get, delete, log; scopes; bad input."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import psycopg
from fastapi import FastAPI

from services.api.migrations import MIGRATIONS as API_MIGRATIONS
from services.api.scopes import SESSIONS
from services.runtime.migrations import apply_migrations
from tests.api.browser_access import browser, new_org, org_flow, publishable_key
from tests.stack_fixtures import separate_database
from tests.webhooks.conftest import count_rows, new_org_client


async def test_register_shows_the_secret_once_and_lists_get_and_delete_the_endpoint(
    hooks_api: FastAPI, database_url: str
) -> None:
    async with await new_org_client(hooks_api, database_url) as client:
        created = await client.post(
            "/api/webhooks", json={"url": "https://hooks.example.com/agentready", "description": "ops"}
        )
        assert created.status_code == 201, created.text
        endpoint = created.json()
        assert endpoint["id"].startswith("we_")
        assert endpoint["events"] == ["session.ready", "session.failed", "session.expired", "session.ended"]
        assert endpoint["secret"].startswith("whsec_")
        assert len(base64.b64decode(endpoint["secret"].removeprefix("whsec_"))) == 32
        listed = (await client.get("/api/webhooks")).json()["endpoints"]
        assert [e["id"] for e in listed] == [endpoint["id"]]
        assert "secret" not in listed[0]
        one = await client.get(f"/api/webhooks/{endpoint['id']}")
        assert one.status_code == 200 and "secret" not in one.json() and one.json()["description"] == "ops"
        assert (await client.get(f"/api/webhooks/{endpoint['id']}/deliveries")).json() == {"deliveries": []}
        assert (await client.delete(f"/api/webhooks/{endpoint['id']}")).status_code == 204
        assert (await client.get(f"/api/webhooks/{endpoint['id']}")).status_code == 404
        assert (await client.delete(f"/api/webhooks/{endpoint['id']}")).status_code == 404
        assert (
            await count_rows(database_url, "SELECT count(*) FROM webhook_endpoints WHERE id = %s", endpoint["id"]) == 0
        )


async def test_rotating_a_secret_shows_the_new_one_once_and_says_until_when_the_old_one_signs(
    hooks_api: FastAPI, database_url: str
) -> None:
    async with await new_org_client(hooks_api, database_url) as client:
        endpoint = (await client.post("/api/webhooks", json={"url": "https://hooks.example.com/r"})).json()
        rotate = f"/api/webhooks/{endpoint['id']}/rotate-secret"
        rotated = await client.post(rotate, json={"previousSecretValidForS": 3600})
        assert rotated.status_code == 200, rotated.text
        body = rotated.json()
        assert body["id"] == endpoint["id"] and body["url"] == endpoint["url"]
        assert body["secret"].startswith("whsec_") and body["secret"] != endpoint["secret"]
        until = datetime.fromisoformat(body["previousSecretExpiresAt"])
        assert 3500 < (until - datetime.now(UTC)).total_seconds() <= 3600
        without_body = await client.post(f"/api/webhooks/{endpoint['id']}/rotate-secret")
        assert without_body.status_code == 200 and without_body.json()["previousSecretExpiresAt"]  # a day by default
        at_once = (
            await client.post(f"/api/webhooks/{endpoint['id']}/rotate-secret", json={"previousSecretValidForS": 0})
        ).json()
        assert at_once["previousSecretExpiresAt"] is None
        assert "secret" not in (await client.get(f"/api/webhooks/{endpoint['id']}")).json()
        too_long = await client.post(
            f"/api/webhooks/{endpoint['id']}/rotate-secret", json={"previousSecretValidForS": 8 * 86_400}
        )
        assert too_long.status_code == 422 and too_long.json()["detail"][0]["field"] == "previousSecretValidForS"
        missing = await client.post("/api/webhooks/we_" + uuid.uuid4().hex + "/rotate-secret", json={})
        assert missing.status_code == 404 and "not found" in missing.json()["error"]


async def test_another_organisation_cannot_rotate_an_endpoints_secret(hooks_api: FastAPI, database_url: str) -> None:
    async with (
        await new_org_client(hooks_api, database_url) as owner,
        await new_org_client(hooks_api, database_url) as other,
    ):
        endpoint = (await owner.post("/api/webhooks", json={"url": "https://a.example.com/h"})).json()
        assert (await other.post(f"/api/webhooks/{endpoint['id']}/rotate-secret", json={})).status_code == 404


async def test_events_are_checked_and_kept_in_order_without_repeats(hooks_api: FastAPI, database_url: str) -> None:
    async with await new_org_client(hooks_api, database_url) as client:
        ok = await client.post(
            "/api/webhooks",
            json={"url": "https://a.example.com/h", "events": ["session.ended", "session.ready", "session.ended"]},
        )
        assert ok.status_code == 201 and ok.json()["events"] == ["session.ended", "session.ready"]
        bad = await client.post("/api/webhooks", json={"url": "https://a.example.com/h", "events": ["session.begun"]})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["field"] == "events.0"
        assert "session.ready" in bad.json()["error"]
        empty = await client.post("/api/webhooks", json={"url": "https://a.example.com/h", "events": []})
        assert empty.status_code == 422


async def test_a_url_that_cannot_be_an_endpoint_is_a_422_naming_the_field(
    hooks_api: FastAPI, database_url: str
) -> None:
    async with await new_org_client(hooks_api, database_url) as client:
        for url in ("ftp://files.example.com/x", "https:///no-host", "not a url"):
            response = await client.post("/api/webhooks", json={"url": url})
            assert response.status_code == 422, (url, response.text)
            body = response.json()
            assert body["detail"][0]["field"] == "url"
            assert body["error"].startswith("invalid request: url:")


async def test_another_organisation_neither_sees_nor_changes_an_endpoint(hooks_api: FastAPI, database_url: str) -> None:
    async with (
        await new_org_client(hooks_api, database_url) as owner,
        await new_org_client(hooks_api, database_url) as other,
    ):
        endpoint = (await owner.post("/api/webhooks", json={"url": "https://a.example.com/h"})).json()
        assert (await other.get("/api/webhooks")).json() == {"endpoints": []}
        for method, path in (
            ("GET", f"/api/webhooks/{endpoint['id']}"),
            ("DELETE", f"/api/webhooks/{endpoint['id']}"),
            ("GET", f"/api/webhooks/{endpoint['id']}/deliveries"),
            ("POST", f"/api/webhooks/{endpoint['id']}/replay"),
            ("POST", f"/api/webhooks/{endpoint['id']}/deliveries/msg_{uuid.uuid4().hex}/replay"),
        ):
            assert (await other.request(method, path)).status_code == 404, (method, path)
        assert (await owner.get(f"/api/webhooks/{endpoint['id']}")).status_code == 200


async def test_a_key_without_the_webhooks_scope_is_refused_saying_which_scope(
    hooks_api: FastAPI, database_url: str
) -> None:
    async with await new_org_client(hooks_api, database_url, scopes=(SESSIONS,)) as client:
        response = await client.get("/api/webhooks")
        assert response.status_code == 403
        assert "'webhooks'" in response.json()["error"]


async def test_a_publishable_key_and_a_client_token_are_refused(hooks_api: FastAPI, database_url: str) -> None:
    org = await new_org(database_url)
    flow_id = await org_flow(hooks_api, org)
    key = await publishable_key(database_url, org, [flow_id])
    async with browser(hooks_api, key) as page:
        client_token = (await page.post(f"/api/flows/{flow_id}/sessions")).json()["clientToken"]
        refused = await page.post("/api/webhooks", json={"url": "https://a.example.com/h"})
    assert refused.status_code == 403 and "publishable keys (pk_) can only start sessions" in refused.json()["error"]
    async with browser(hooks_api, client_token) as page:
        assert (await page.get("/api/webhooks")).status_code == 403
    async with browser(hooks_api, None) as anonymous:
        assert (await anonymous.get("/api/webhooks")).status_code == 401


async def test_openapi_documents_the_webhook_routes(hooks_api: FastAPI, database_url: str) -> None:
    async with await new_org_client(hooks_api, database_url) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/api/webhooks", "/api/webhooks/{endpoint_id}", "/api/webhooks/{endpoint_id}/deliveries"} <= set(paths)
    assert "/api/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay" in paths
    assert "422" in paths["/api/webhooks"]["post"]["responses"]


async def test_the_scope_migration_gives_webhooks_only_to_keys_that_had_every_other_scope(database_url: str) -> None:
    before = [m for m in API_MIGRATIONS if m.version < 5]
    full = ["sessions", "flows", "watch:monitor", "watch:supervisor", "watch:admin"]
    async with (
        separate_database(database_url) as fresh,
        await psycopg.AsyncConnection.connect(fresh, autocommit=True) as conn,
    ):
        await apply_migrations(conn, "api", before)
        await conn.execute("INSERT INTO organisations (id, name) VALUES ('o1', 'o')")
        for key_id, scopes in (("full", full), ("narrow", ["sessions"])):
            await conn.execute(
                "INSERT INTO api_keys (id, org_id, key_hash, key_prefix, scopes) VALUES (%s, 'o1', %s, 'ar_x', %s)",
                (key_id, key_id, scopes),
            )
        await apply_migrations(conn, "api", API_MIGRATIONS)
        cur = await conn.execute("SELECT id, scopes FROM api_keys ORDER BY id")
        assert await cur.fetchall() == [("full", [*full, "webhooks"]), ("narrow", ["sessions"])]
