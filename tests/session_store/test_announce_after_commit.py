"""A status change is announced only once it is stored, and still announced if the process dies in between
(services/session_store/outbox.py), on a real PostgreSQL and a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from faststream.redis.parser import BinaryMessageFormatV1
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from contracts.events import SessionDispatched, SessionRequested, SessionStatusChanged
from contracts.streams import SESSION_STATUS_CHANGED
from services.session_store.announcing import StatusAnnouncer
from services.session_store.applying import handle_events
from services.session_store.repository import PostgresSessionRepository


async def _announced(redis_url: str, session_id: str) -> list[tuple[str | None, str]]:
    """(from, to) of every ``session.status_changed`` of the session on the stream, in stream order."""
    redis = Redis.from_url(redis_url)
    try:
        found = []
        for _, fields in await redis.xrange(SESSION_STATUS_CHANGED):
            data, _ = BinaryMessageFormatV1.parse(fields[b"__data__"])
            event = SessionStatusChanged.model_validate_json(data)
            if event.session_id == session_id:
                found.append((event.from_status, event.to_status))
        return found
    finally:
        await redis.aclose()


def _requested(sid: str) -> SessionRequested:
    return SessionRequested(
        session_id=sid, org_id="org-o", flow_id="flow-o", room_name=f"session-{sid}", greeting="Hi",
        ready_deadline=datetime.now(UTC) + timedelta(seconds=30),
    )  # fmt: skip


async def _status(repo: PostgresSessionRepository, sid: str) -> str | None:
    row = await repo.get(sid)
    return None if row is None else str(row["status"])


async def test_a_failed_commit_announces_nothing_and_its_retry_announces_once(
    pool: AsyncConnectionPool, announcer: StatusAnnouncer, store_redis_url: str
) -> None:
    sid, tag = uuid.uuid4().hex, f"fail_{uuid.uuid4().hex[:12]}"
    repo = PostgresSessionRepository(pool)
    await handle_events([_requested(sid)], repo, announcer)
    # A deferred constraint trigger raises at COMMIT, once, for this session's dispatch: the commit itself fails
    # (as when the connection drops or a serialization failure aborts it), after every statement succeeded.
    async with pool.connection() as conn:
        await conn.execute(f"CREATE SEQUENCE {tag}")
        await conn.execute(f"""
            CREATE FUNCTION {tag}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.id = '{sid}' AND NEW.status = 'dispatched' AND nextval('{tag}') = 1 THEN
                    RAISE EXCEPTION 'the commit fails once';
                END IF;
                RETURN NULL;
            END $$""")
        await conn.execute(
            f"CREATE CONSTRAINT TRIGGER {tag} AFTER UPDATE ON sessions DEFERRABLE INITIALLY DEFERRED "
            f"FOR EACH ROW EXECUTE FUNCTION {tag}()"
        )
    try:
        dispatched = SessionDispatched(session_id=sid, room_name=f"session-{sid}", dispatch_id="AD_o")
        with pytest.raises(psycopg.Error, match="the commit fails once"):
            await handle_events([dispatched], repo, announcer)
        assert await _status(repo, sid) == "pending"
        assert await _announced(store_redis_url, sid) == [(None, "pending")]  # nobody heard of a dispatch
        await handle_events([dispatched], repo, announcer)  # the redelivery
        assert await _status(repo, sid) == "dispatched"
        assert await _announced(store_redis_url, sid) == [(None, "pending"), ("pending", "dispatched")]
    finally:
        async with pool.connection() as conn:
            await conn.execute(f"DROP TRIGGER {tag} ON sessions")
            await conn.execute(f"DROP FUNCTION {tag}()")
            await conn.execute(f"DROP SEQUENCE {tag}")


class DiesBeforePublishing:
    """The process dies (here: Redis refuses) after the commit, before the announcement is out."""

    async def publish_all(self, events: Sequence[SessionStatusChanged]) -> None:
        raise ConnectionError("killed between the commit and the announcement")


async def test_a_change_committed_but_not_announced_is_announced_once_after_a_restart(
    pool: AsyncConnectionPool, announcer: StatusAnnouncer, store_redis_url: str
) -> None:
    sid = uuid.uuid4().hex
    dying = PostgresSessionRepository(pool)
    await handle_events([_requested(sid)], dying, announcer)
    dispatched = SessionDispatched(session_id=sid, room_name=f"session-{sid}", dispatch_id="AD_o")
    with pytest.raises(ConnectionError):
        await handle_events([dispatched], dying, DiesBeforePublishing())
    assert await _status(dying, sid) == "dispatched"  # committed
    assert await _announced(store_redis_url, sid) == [(None, "pending")]
    restarted = PostgresSessionRepository(pool)  # a new process: the event is redelivered (it was never acked)
    assert await handle_events([dispatched], restarted, announcer) == [None]  # applied already: moves nothing
    assert await _announced(store_redis_url, sid) == [(None, "pending")]
    assert await restarted.sweep_announcements(0.0, 100, announcer.publish_all) >= 1  # what the sweep finds due
    await restarted.sweep_announcements(0.0, 100, announcer.publish_all)  # and again: nothing of it is left
    assert await _announced(store_redis_url, sid) == [(None, "pending"), ("pending", "dispatched")]


async def test_the_sweep_never_announces_again_what_was_announced(
    pool: AsyncConnectionPool, announcer: StatusAnnouncer, store_redis_url: str
) -> None:
    sid = uuid.uuid4().hex
    repo = PostgresSessionRepository(pool)
    await handle_events([_requested(sid)], repo, announcer)
    await handle_events(
        [SessionDispatched(session_id=sid, room_name=f"session-{sid}", dispatch_id="AD_o")], repo, announcer
    )
    await repo.sweep_announcements(0.0, 100, announcer.publish_all)  # deletes what this replica announced first
    await repo.sweep_announcements(0.0, 100, announcer.publish_all)
    assert await _announced(store_redis_url, sid) == [(None, "pending"), ("pending", "dispatched")]
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM session_announcements WHERE events LIKE %s", (f"%{sid}%",))
        assert await cur.fetchone() == (0,)  # the outbox keeps nothing that was announced


async def test_a_replica_that_stops_leaves_nothing_announced_for_the_sweep(
    pool: AsyncConnectionPool, announcer: StatusAnnouncer, store_redis_url: str
) -> None:
    sid = uuid.uuid4().hex
    stopping = PostgresSessionRepository(pool)
    await handle_events([_requested(sid)], stopping, announcer)
    await stopping.forget_announced()  # its shutdown
    await PostgresSessionRepository(pool).sweep_announcements(0.0, 1000, announcer.publish_all)  # another replica
    assert await _announced(store_redis_url, sid) == [(None, "pending")]
