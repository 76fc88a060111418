"""Webhook signing secrets sealed at rest (WEBHOOK_SECRET_KEYS): the API stores them sealed, the sender opens them to
sign, a key rotation reseals them, and a secret no key opens fails its delivery with a reason instead of crashing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
import structlog.testing
from cryptography.fernet import Fernet
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook
from typer.testing import CliRunner

from services.api.app import create_app as create_api
from services.api.settings import ApiSettings
from services.api.webhook_store import WebhookStore
from services.runtime.migrations import apply_migrations
from services.runtime.sealed_secrets import SEALED_PREFIX, SecretSeal, SecretUnreadable
from services.webhooks.__main__ import cli
from services.webhooks.migrations import MIGRATIONS
from services.webhooks.resealing import reseal_secrets
from services.webhooks.settings import WebhookSettings
from tests.polling import wait_until
from tests.stack_fixtures import separate_database
from tests.webhooks.conftest import new_org_client
from tests.webhooks.receiver import Receiver
from tests.webhooks.sender_stack import publisher, running_sender, status_change

KEY_A, KEY_B = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_a_sealed_secret_opens_with_any_listed_key_and_only_with_one() -> None:
    sealed = SecretSeal([KEY_A]).seal("whsec_abc")
    assert sealed.startswith(SEALED_PREFIX) and "whsec_abc" not in sealed
    assert SecretSeal([KEY_B, KEY_A]).open(sealed) == "whsec_abc"  # rotation: the old key still opens
    assert SecretSeal([KEY_A]).open("whsec_plain") == "whsec_plain"  # stored before sealing was on
    with pytest.raises(SecretUnreadable, match="none of the keys"):
        SecretSeal([KEY_B]).open(sealed)
    with pytest.raises(SecretUnreadable, match="WEBHOOK_SECRET_KEYS is not set"):
        SecretSeal().open(sealed)
    assert SecretSeal().seal("whsec_abc") == "whsec_abc"  # no keys: stored as it is


def test_resealing_moves_a_secret_to_the_first_key_once() -> None:
    old = SecretSeal([KEY_A]).seal("whsec_abc")
    rotated = SecretSeal([KEY_B, KEY_A])
    resealed = rotated.resealed(old)
    assert resealed is not None and SecretSeal([KEY_B]).open(resealed) == "whsec_abc"
    assert rotated.resealed(resealed) is None  # already under the first key
    plain = rotated.resealed("whsec_plain")
    assert plain is not None and SecretSeal([KEY_B]).open(plain) == "whsec_plain"
    with pytest.raises(SecretUnreadable):
        SecretSeal([Fernet.generate_key().decode()]).resealed(old)


def test_a_key_that_is_not_a_fernet_key_refuses_to_start_saying_which() -> None:
    with pytest.raises(ValidationError, match=r"WEBHOOK_SECRET_KEYS: key 2 of 2 is not a Fernet key.*generate one"):
        WebhookSettings(webhook_secret_keys=f"{KEY_A},not-a-key")
    assert KEY_B not in repr(WebhookSettings(webhook_secret_keys=KEY_B))  # never printed with the settings


@pytest.fixture
async def sealing_client(
    hooks_redis_url: str, database_url: str, hooks_api: FastAPI
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh organisation on an API app that seals with KEY_A (``hooks_api`` first: its lifespan
    migrated the shared schema); the organisation's endpoints go afterwards, so no later test's sender (without
    keys) meets them."""
    settings = ApiSettings(
        redis_url=hooks_redis_url, database_url=database_url, dev_mode=True, webhook_secret_keys=KEY_A
    )
    app = create_api(settings)
    async with app.router.lifespan_context(app), await new_org_client(app, database_url) as client:
        yield client
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute("DELETE FROM webhook_endpoints WHERE org_id = %s", (client.headers["x-test-org"],))


async def _stored(database_url: str, endpoint_id: str) -> tuple[str, str | None]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT secret, previous_secret FROM webhook_endpoints WHERE id = %s", (endpoint_id,))
        row = await cur.fetchone()
    assert row is not None
    return row[0], row[1]


async def _registered(client: httpx.AsyncClient, receiver: Receiver) -> tuple[str, dict[str, str]]:
    """An endpoint of the client's organisation at a new path of ``receiver``, for ``session.ready``: path, body."""
    path = f"/ok/{uuid.uuid4().hex}"
    created = await client.post("/api/webhooks", json={"url": receiver.base_url + path, "events": ["session.ready"]})
    assert created.status_code == 201, created.text
    return path, created.json()


async def test_the_api_stores_secrets_sealed_and_the_sender_signs_with_both_during_a_rotation(
    sealing_client: httpx.AsyncClient, database_url: str, hooks_redis_url: str, receiver: Receiver
) -> None:
    client, org_id = sealing_client, sealing_client.headers["x-test-org"]
    path, endpoint = await _registered(client, receiver)
    rotated = (await client.post(f"/api/webhooks/{endpoint['id']}/rotate-secret", json={})).json()
    secret, previous = await _stored(database_url, endpoint["id"])
    for stored, plain in ((secret, rotated["secret"]), (previous, endpoint["secret"])):
        assert stored is not None and stored.startswith(SEALED_PREFIX) and plain not in stored
        assert SecretSeal([KEY_A]).open(stored) == plain
    async with (
        running_sender(hooks_redis_url, database_url, webhook_secret_keys=f"{KEY_B},{KEY_A}"),
        publisher(hooks_redis_url) as events,
    ):
        await events.publish(status_change(org_id, uuid.uuid4().hex, "agent_joined", "ready"))
        await wait_until(lambda: len(receiver.to(path)) == 1, deadline_s=10, what="the delivery")
    (got,) = receiver.to(path)
    for plain in (rotated["secret"], endpoint["secret"]):  # a receiver on either secret verifies it
        Webhook(plain).verify(got.body, got.headers)


async def test_a_secret_no_key_opens_fails_its_delivery_with_the_reason_and_nothing_is_sent(
    sealing_client: httpx.AsyncClient, database_url: str, hooks_redis_url: str, receiver: Receiver
) -> None:
    client, org_id = sealing_client, sealing_client.headers["x-test-org"]
    path, endpoint = await _registered(client, receiver)

    async def dead() -> bool:
        log = (await client.get(f"/api/webhooks/{endpoint['id']}/deliveries")).json()["deliveries"]
        return [d["status"] for d in log] == ["dead"]

    async with (
        running_sender(hooks_redis_url, database_url, webhook_max_attempts=1),  # no keys: the secret cannot be opened
        publisher(hooks_redis_url) as events,
    ):
        await events.publish(status_change(org_id, uuid.uuid4().hex, "agent_joined", "ready"))
        await wait_until(dead, deadline_s=10, what="the delivery given up")
    (delivery,) = (await client.get(f"/api/webhooks/{endpoint['id']}/deliveries")).json()["deliveries"]
    assert "not sent" in delivery["lastError"] and "WEBHOOK_SECRET_KEYS is not set" in delivery["lastError"]
    assert receiver.to(path) == []


@pytest.fixture
async def reseal_db(database_url: str) -> AsyncIterator[str]:
    """A database of its own with the webhook schema: a reseal walks every endpoint, other tests' too."""
    async with separate_database(database_url) as own:
        async with await psycopg.AsyncConnection.connect(own) as conn:
            await apply_migrations(conn, "webhooks", MIGRATIONS)
        yield own


async def _unsealed_endpoints(database_url: str, count: int) -> list[tuple[str, str, str]]:
    """``count`` endpoints stored by an API without keys, each rotated once: (id, secret, previous secret)."""
    made = []
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2) as pool:
        store = WebhookStore(pool)
        for _ in range(count):
            endpoint, previous = await store.create("org-reseal", "http://127.0.0.1:9/x", ["session.ready"], "")
            rotated = await store.rotate_secret("org-reseal", endpoint.id, 3600)
            assert rotated is not None
            made.append((endpoint.id, rotated[1], previous))
    return made


async def test_reseal_seals_secrets_stored_before_and_moves_them_to_a_new_first_key(reseal_db: str) -> None:
    made = await _unsealed_endpoints(reseal_db, 5)
    for endpoint_id, secret, previous in made:
        assert await _stored(reseal_db, endpoint_id) == (secret, previous)  # stored as they are without keys

    first = await reseal_secrets(reseal_db, SecretSeal([KEY_A]), page=2)  # pages of 2: the paging is walked
    assert (first.endpoints, first.changed, first.unreadable) == (5, 5, [])
    for endpoint_id, secret, previous in made:
        sealed_secret, sealed_previous = await _stored(reseal_db, endpoint_id)
        assert SecretSeal([KEY_A]).open(sealed_secret) == secret
        assert sealed_previous is not None and SecretSeal([KEY_A]).open(sealed_previous) == previous

    again = await reseal_secrets(reseal_db, SecretSeal([KEY_A]), page=2)
    assert (again.endpoints, again.changed) == (5, 0)

    moved = await reseal_secrets(reseal_db, SecretSeal([KEY_B, KEY_A]))  # a new first key; then the old one can go
    assert moved.changed == 5
    for endpoint_id, secret, previous in made:
        moved_secret, moved_previous = await _stored(reseal_db, endpoint_id)
        assert SecretSeal([KEY_B]).open(moved_secret) == secret
        assert moved_previous is not None and SecretSeal([KEY_B]).open(moved_previous) == previous


def test_the_reseal_command_says_what_it_did_and_fails_on_secrets_no_key_opens(
    reseal_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_unsealed_endpoints(reseal_db, 2))
    monkeypatch.setenv("DATABASE_URL", reseal_db)
    monkeypatch.delenv("WEBHOOK_SECRET_KEYS", raising=False)
    runner = CliRunner()
    unset = runner.invoke(cli, ["reseal-secrets"])
    assert unset.exit_code == 2 and "WEBHOOK_SECRET_KEYS is not set" in unset.output

    monkeypatch.setenv("WEBHOOK_SECRET_KEYS", KEY_A)
    done = runner.invoke(cli, ["reseal-secrets"])
    assert done.exit_code == 0, done.output
    assert "2 endpoints, 2 sealed again, 0 unreadable" in done.output

    monkeypatch.setenv("WEBHOOK_SECRET_KEYS", Fernet.generate_key().decode())  # KEY_A lost: nothing opens
    lost = runner.invoke(cli, ["reseal-secrets"])
    assert lost.exit_code == 1 and "open with none of WEBHOOK_SECRET_KEYS" in lost.output


async def test_a_sender_that_cannot_open_the_stored_secrets_says_so_at_start_up(
    sealing_client: httpx.AsyncClient, database_url: str, hooks_redis_url: str, receiver: Receiver
) -> None:
    _path, endpoint = await _registered(sealing_client, receiver)
    with structlog.testing.capture_logs() as without_key:
        async with running_sender(hooks_redis_url, database_url):
            pass
    (said,) = [e for e in without_key if e["event"] == "webhook_secrets_unreadable"]
    assert said["log_level"] == "error" and endpoint["id"] in said["endpoint_ids"]
    with structlog.testing.capture_logs() as with_key:
        async with running_sender(hooks_redis_url, database_url, webhook_secret_keys=KEY_A):
            pass
    assert not [e for e in with_key if e["event"] == "webhook_secrets_unreadable"]
