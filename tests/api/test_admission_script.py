"""The session POST's Redis traffic: one round trip, and a stream entry identical to what FastStream publishes."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta

import pytest
from faststream.redis import RedisBroker
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.asyncio.connection import Connection

from contracts.events import SessionRequested, utc_now
from contracts.keys import idempotency_key, open_sessions_key, session_snapshot_key
from contracts.streams import SESSION_REQUESTED
from services.api.admin import create_key
from services.api.admission import AdmissionPolicy, RedisSessionAdmission
from services.api.app import create_app
from services.api.dependencies import install
from services.api.settings import ApiSettings
from services.runtime.broker import new_broker
from tests.api.conftest import http_client, new_flow


class CountingConnection(Connection):
    """A real Redis connection that counts what it writes to the socket: one write is one round trip."""

    sent = 0  # over all connections of this class

    async def send_packed_command(self, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
        CountingConnection.sent += 1
        await super().send_packed_command(command, check_health)


@pytest.fixture
async def counted_clients(api_redis_url: str) -> AsyncIterator[tuple[Redis, RedisBroker]]:
    """A Redis client and a broker whose every round trip is counted in ``CountingConnection.sent``."""
    redis = Redis.from_url(api_redis_url, connection_class=CountingConnection)
    broker = new_broker(api_redis_url, connection_class=CountingConnection)  # the services' broker options
    await broker.connect()
    try:
        yield redis, broker
    finally:
        await broker.stop()
        await redis.aclose()


def _requested(org_id: str) -> SessionRequested:
    """A new session's request for ``org_id``, as the API admits it (a fresh session id)."""
    session_id, now = uuid.uuid4().hex, utc_now()
    return SessionRequested(
        session_id=session_id,
        org_id=org_id,
        flow_id="flow",
        room_name=f"session-{session_id}",
        greeting="Hello",
        ready_deadline=now + timedelta(seconds=30),
        occurred_at=now,
        agent_credential="credential",
    )


async def test_a_session_post_is_one_redis_round_trip(
    api_settings: ApiSettings, counted_clients: tuple[Redis, RedisBroker]
) -> None:
    settings = api_settings.model_copy(update={"max_open_sessions_per_org": 3})
    key, _org = await create_key(settings.database_url, f"trips-{uuid.uuid4().hex[:8]}")
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        AsyncConnectionPool(settings.database_url, min_size=1, max_size=2, open=False) as pool,
        http_client(app, key) as client,
    ):
        install(app.state, settings, pool, *counted_clients)  # the same app, every Redis client of the hot path counted
        flow_id = await new_flow(client)
        await client.post(f"/api/flows/{flow_id}/sessions")  # reads the key and flow, loads the script

        async def trips(headers: dict[str, str]) -> tuple[int, int]:
            before = CountingConnection.sent
            response = await client.post(f"/api/flows/{flow_id}/sessions", headers=headers)
            return response.status_code, CountingConnection.sent - before

        idem = {"Idempotency-Key": uuid.uuid4().hex}
        assert await trips({}) == (202, 1)
        assert await trips(idem) == (202, 1)
        assert await trips(idem) == (202, 2)  # a replay also checks that its snapshot is still there
        assert await trips({}) == (429, 1)


async def test_the_stream_entry_is_what_broker_publish_writes(
    api_redis_url: str, counted_clients: tuple[Redis, RedisBroker]
) -> None:
    redis, broker = counted_clients
    admission = RedisSessionAdmission(broker, redis, 60, AdmissionPolicy(max_open=5, lease_s=60, idempotency_ttl_s=60))
    request = _requested(f"org-{uuid.uuid4().hex[:8]}")
    session_id = request.session_id
    assert (await admission.admit(request, None, "{}")).outcome == "admitted"
    scratch = f"agentready:test-admission:{uuid.uuid4().hex}"
    await broker.publish(request, stream=scratch, correlation_id=request.correlation_id)
    try:
        entries = await redis.xrevrange(SESSION_REQUESTED, count=100)
        ours = [fields for _, fields in entries if session_id.encode() in b"".join(fields.values())]
        published = [fields for _, fields in await redis.xrange(scratch)]
        assert len(ours) == 1 and ours == published  # same fields, same bytes (envelope, headers, JSON)
        assert set(ours[0]) == {b"__data__"}
        assert await redis.get(session_snapshot_key(session_id)) == request.model_dump_json().encode()
    finally:
        await redis.delete(scratch)


async def test_the_policy_numbers_in_the_script_are_the_ones_applied(
    counted_clients: tuple[Redis, RedisBroker],
) -> None:
    redis, broker = counted_clients
    policy = AdmissionPolicy(max_open=2, lease_s=700, idempotency_ttl_s=500)
    admission = RedisSessionAdmission(broker, redis, 900, policy)
    org_id = f"org-{uuid.uuid4().hex[:8]}"
    first, idem = _requested(org_id), uuid.uuid4().hex
    assert (await admission.admit(first, idem, '{"remembered": true}')).outcome == "admitted"
    assert 890 <= await redis.ttl(session_snapshot_key(first.session_id)) <= 900
    assert 490 <= await redis.ttl(idempotency_key(org_id, idem)) <= 500
    assert 690 <= await redis.ttl(open_sessions_key(org_id)) <= 700
    slot_expiry = await redis.zscore(open_sessions_key(org_id), first.session_id)
    assert slot_expiry is not None and 690 <= slot_expiry - time.time() <= 700
    replay = await admission.admit(_requested(org_id), idem, "{}")
    assert (replay.outcome, replay.record) == ("replay", '{"remembered": true}')
    no_key = _requested(org_id)
    assert (await admission.admit(no_key, None, '{"not": "kept"}')).outcome == "admitted"
    assert await redis.get(idempotency_key(org_id, "")) is None  # without a key nothing is remembered
    assert (await admission.admit(_requested(org_id), None, "")).outcome == "full"  # max_open=2
