"""The session store as a consumer: events over real Redis Streams move rows in real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from faststream.redis import RedisBroker
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from contracts.events import AgentReady, SessionDispatched, SessionRequested, SessionStatusChanged
from contracts.streams import SESSION_STATUS_CHANGED
from services.runtime.multi_stream import MultiStreamSub
from services.runtime.publishing import BrokerPublisher
from services.session_store.app import create_app
from services.session_store.repository import PostgresSessionRepository
from services.session_store.settings import SessionStoreSettings
from tests.polling import wait_until


async def _status_changes(redis: Redis, session_id: str) -> list[SessionStatusChanged]:
    from faststream.redis.parser import BinaryMessageFormatV1

    found = []
    for _, fields in await redis.xrange(SESSION_STATUS_CHANGED):
        data, _ = BinaryMessageFormatV1.parse(fields[b"__data__"])
        event = SessionStatusChanged.model_validate_json(data)
        if event.session_id == session_id:
            found.append(event)
    return found


async def test_events_published_before_start_are_consumed(store_redis_url: str, database_url: str, pool) -> None:  # type: ignore[no-untyped-def]
    redis_url = store_redis_url
    sid = uuid.uuid4().hex
    broker = RedisBroker(redis_url)
    await broker.connect()
    publisher = BrokerPublisher(broker)
    app = create_app(SessionStoreSettings(redis_url=redis_url, database_url=database_url, consumer_name=f"t-{sid}"))
    redis = Redis.from_url(redis_url)
    try:
        # Published out of order, and before the consumer ever ran: groups start at id 0, so nothing is missed.
        await publisher.publish(AgentReady(session_id=sid, greeting="Hi"))
        await publisher.publish(
            SessionRequested(
                session_id=sid,
                org_id="o",
                flow_id="f",
                room_name=f"session-{sid}",
                greeting="Hi",
                ready_deadline=datetime.now(UTC) + timedelta(seconds=30),
            )
        )
        await publisher.publish(SessionDispatched(session_id=sid, room_name=f"session-{sid}", dispatch_id="AD_x"))
        await app.start()
        repo = PostgresSessionRepository(pool)
        deadline = time.monotonic() + 10
        row = None
        while time.monotonic() < deadline:
            row = await repo.get(sid)
            if row and row["status"] == "ready" and row["dispatched_at"] and row["requested_at"]:
                break
            await asyncio.sleep(0.05)
        assert row is not None and row["status"] == "ready", f"row after 10 s: {row}"
        assert row["org_id"] == "o"
        changes = await _status_changes(redis, sid)
        # Handlers run concurrently, so the order of application is arbitrary; each move must go forward.
        moves = [(c.from_status, c.to_status) for c in changes]
        assert moves[0][0] is None and moves[-1][1] == "ready", moves
        assert all(prev[1] == nxt[0] for prev, nxt in pairwise(moves)), moves

        async def acked() -> bool:  # the acks go with the reader's next read (after its rest, with BATCH_REST_MS)
            return (await redis.xpending("agentready:session.dispatched", "session_store"))["pending"] == 0

        await wait_until(acked, deadline_s=5, what="every handled event acked")
    finally:
        await app.stop()
        await broker.stop()
        await redis.aclose()


async def test_a_requested_sessions_deadline_wakes_the_expiry_scan(
    store_redis_url: str, database_url: str, pool: AsyncConnectionPool
) -> None:
    """The scan's interval (here an hour) is only the fallback: the replica that recorded a request scans at its
    readiness deadline."""
    sid = uuid.uuid4().hex
    broker = RedisBroker(store_redis_url)
    await broker.connect()
    settings = SessionStoreSettings(
        redis_url=store_redis_url, database_url=database_url, consumer_name=f"t-{sid}", expiry_interval_s=3600
    )
    app = create_app(settings)
    repo = PostgresSessionRepository(pool)
    await app.start()
    try:
        requested = SessionRequested(
            session_id=sid, org_id="o", flow_id="f", room_name=f"session-{sid}", greeting="Hi",
            ready_deadline=datetime.now(UTC) + timedelta(seconds=1),
        )  # fmt: skip
        await BrokerPublisher(broker).publish(requested)

        async def expired() -> bool:
            row = await repo.get(sid)
            return row is not None and row["status"] == "expired"

        await wait_until(expired, deadline_s=10, what="the session expired at its deadline")
    finally:
        await app.stop()
        await broker.stop()


def test_the_reader_rests_after_a_small_batch_as_configured() -> None:
    """BATCH_REST_MS and BATCH_LINGER_MS reach the store's one reader of all its streams; it lingers by default."""
    urls = {"redis_url": "redis://unused", "database_url": "postgresql://unused/db"}
    app = create_app(SessionStoreSettings(**urls, batch_rest_ms=123, batch_linger_ms=0))
    assert app.broker is not None
    subs = [getattr(s, "_stream_sub", None) for s in app.broker.subscribers]
    readers = [sub for sub in subs if isinstance(sub, MultiStreamSub)]
    assert [(r.rest_ms, r.linger_ms) for r in readers] == [(123, 0)]
    defaults = SessionStoreSettings(**urls)
    assert (defaults.batch_rest_ms, defaults.batch_linger_ms) == (0, 50)
