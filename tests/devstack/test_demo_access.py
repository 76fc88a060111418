"""make dev's demo access: a demo flow and a publishable key for it, the same at every start, that a page on the
API's origin can start sessions with (and the stack's secret key keeps every scope)."""

from __future__ import annotations

import os
import uuid

import psycopg

from devstack.api_key import ALL_SCOPES, create_api_key, create_demo_access, demo_origins
from devstack.stack_handle import REPO_ROOT
from services.api.scopes import ALL_SCOPES as API_SCOPES


async def test_demo_access_is_idempotent_and_grants_the_demo_flow_from_local_origins(database_url: str) -> None:
    assert ALL_SCOPES == API_SCOPES  # the launcher's copy of the names
    env = {**os.environ, "DATABASE_URL": database_url}
    org = f"devdemo-{uuid.uuid4().hex[:8]}"
    secret = await create_api_key(env, REPO_ROOT, org=org)
    origins = demo_origins(8123, "https://tunnel.example")
    assert origins[:2] == ["http://127.0.0.1:8123", "http://localhost:8123"] and origins[-1] == "https://tunnel.example"
    first = await create_demo_access(env, REPO_ROOT, org=org, origins=origins)
    again = await create_demo_access(env, REPO_ROOT, org=org, origins=origins)
    assert first == again and first[1].startswith("pk_")
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT k.kind, k.scopes, k.flow_ids, k.origins FROM api_keys k JOIN organisations o ON o.id = k.org_id "
            "WHERE o.name = %s ORDER BY k.kind",
            (org,),
        )
        rows = await cur.fetchall()
    assert rows == [("publishable", [], [first[0]], origins), ("secret", list(ALL_SCOPES), [], [])]
    assert secret.startswith("ar_")
