"""Every status transition, readiness expiry (safe with several replicas) and admission slots, on real servers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from faststream.redis import RedisBroker
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from contracts.events import (
    AgentFailed,
    AgentJoined,
    AgentReady,
    Event,
    SessionDispatched,
    SessionEndRequested,
    SessionRequested,
    SessionStatusChanged,
)
from contracts.keys import open_sessions_key
from contracts.status import SessionStatus, can_transition
from services.session_store.announcing import StatusAnnouncer
from services.session_store.app import create_app
from services.session_store.expiry import EXPIRED_REASON, EndRules, expire_due_sessions
from services.session_store.lifecycle import STAGE_TIMES, Transition, handle_event
from services.session_store.repository import PostgresSessionRepository
from services.session_store.settings import SessionStoreSettings


class RecordingPublisher:
    """Keeps what was published (a fake of the broker port)."""

    def __init__(self) -> None:
        self.events: list[SessionStatusChanged] = []

    async def publish(self, event: Event) -> None:
        assert isinstance(event, SessionStatusChanged)
        self.events.append(event)


def _requested(sid: str, deadline_s: float = 30) -> SessionRequested:
    return SessionRequested(
        session_id=sid,
        org_id="org-x",
        flow_id="flow-x",
        room_name=f"session-{sid}",
        greeting="Hi",
        ready_deadline=datetime.now(UTC) + timedelta(seconds=deadline_s),
    )


def _event_for(status: SessionStatus, sid: str) -> Event:
    return {
        SessionStatus.PENDING: _requested(sid),
        SessionStatus.DISPATCHED: SessionDispatched(session_id=sid, room_name=f"session-{sid}", dispatch_id="AD"),
        SessionStatus.AGENT_JOINED: AgentJoined(session_id=sid, room_name=f"session-{sid}", job_id="AJ"),
        SessionStatus.READY: AgentReady(session_id=sid, greeting="Hi"),
        SessionStatus.ENDED: SessionEndRequested(session_id=sid),
        SessionStatus.FAILED: AgentFailed(session_id=sid, stage="tts", reason="down"),
    }[status]


async def _status(repo: PostgresSessionRepository, sid: str) -> SessionStatus:
    row = await repo.get(sid)
    assert row is not None
    return SessionStatus(row["status"])


async def _reach(repo: PostgresSessionRepository, sid: str, status: SessionStatus) -> None:
    """Put a new session at ``status`` through the events (or the expiry) that lead there."""
    publisher = RecordingPublisher()
    if status is SessionStatus.EXPIRED:
        await handle_event(_requested(sid, deadline_s=-1), repo, publisher)
        await repo.expire_due(1000, EXPIRED_REASON)  # another replica may take it first: same outcome
    else:
        await handle_event(_requested(sid), repo, publisher)
        if status is not SessionStatus.PENDING:
            await handle_event(_event_for(status, sid), repo, publisher)
    assert await _status(repo, sid) is status


@pytest.mark.parametrize("start", list(SessionStatus), ids=str)
async def test_every_transition_follows_the_machine(pool: AsyncConnectionPool, start: SessionStatus) -> None:
    repo = PostgresSessionRepository(pool)
    for target in SessionStatus:
        if target is SessionStatus.EXPIRED:
            continue  # only the deadline check expires a session: covered below
        sid = uuid.uuid4().hex
        await _reach(repo, sid, start)
        publisher = RecordingPublisher()
        await handle_event(_event_for(target, sid), repo, publisher)
        moved = can_transition(start, target) and target is not start
        assert await _status(repo, sid) is (target if moved else start), (start, target)
        assert [(e.from_status, e.to_status) for e in publisher.events] == ([(start, target)] if moved else [])


async def test_expiry_takes_only_open_sessions_past_their_deadline(pool: AsyncConnectionPool) -> None:
    repo, publisher = PostgresSessionRepository(pool), RecordingPublisher()
    due, later, ready = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    await handle_event(_requested(due, deadline_s=-1), repo, publisher)
    await handle_event(SessionDispatched(session_id=due, room_name="r", dispatch_id="AD"), repo, publisher)
    await handle_event(_requested(later, deadline_s=60), repo, publisher)
    await handle_event(_requested(ready, deadline_s=-1), repo, publisher)
    await handle_event(AgentReady(session_id=ready, greeting="Hi"), repo, publisher)
    publisher.events.clear()
    await expire_due_sessions(repo, publisher, batch=2)
    row = await repo.get(due)
    assert row is not None and row["status"] == "expired" and row["ended_at"] is not None
    assert row["reason"] == EXPIRED_REASON
    assert (await _status(repo, later), await _status(repo, ready)) == (SessionStatus.PENDING, SessionStatus.READY)
    # Late events never revive an expired session; an end request after expiry changes nothing either.
    await handle_event(AgentReady(session_id=due, greeting="Hi"), repo, publisher)
    await handle_event(SessionEndRequested(session_id=due), repo, publisher)
    assert await _status(repo, due) is SessionStatus.EXPIRED
    mine = [e for e in publisher.events if e.session_id in {due, later, ready}]
    assert [(e.from_status, e.to_status, e.org_id) for e in mine] in ([("dispatched", "expired", "org-x")], [])


async def test_expiries_and_scanned_ends_announce_the_stage_times_they_recorded(pool: AsyncConnectionPool) -> None:
    repo, publisher = PostgresSessionRepository(pool), RecordingPublisher()
    due, overdue = uuid.uuid4().hex, uuid.uuid4().hex
    await handle_event(_requested(due, deadline_s=-1), repo, publisher)
    await handle_event(SessionDispatched(session_id=due, room_name="r", dispatch_id="AD"), repo, publisher)
    await handle_event(_requested(overdue, deadline_s=60), repo, publisher)
    await handle_event(AgentReady(session_id=overdue, greeting="Hi"), repo, publisher)
    expired = {t.session_id: t for t in await repo.expire_due(1000, EXPIRED_REASON)}
    rules = EndRules(max_duration_s=0, user_left_grace_s=3600, no_user_timeout_s=3600)
    ended = {t.session_id: t for t in await repo.end_overdue(1000, rules)}
    for sid, transition in ((due, expired[due]), (overdue, ended[overdue])):
        row = await repo.get(sid)
        assert row is not None and row["ended_at"] is not None
        stages = transition.announcement("corr").stages
        assert stages is not None and stages.model_dump() == {name: row[name] for name in STAGE_TIMES}, sid
    assert expired[due].stages is not None and expired[due].stages.dispatched_at is not None
    assert ended[overdue].stages is not None and ended[overdue].stages.ready_at is not None


async def test_concurrent_expiry_checks_expire_each_session_once(pool: AsyncConnectionPool) -> None:
    repo = PostgresSessionRepository(pool)
    sids = [uuid.uuid4().hex for _ in range(20)]
    for sid in sids:
        await handle_event(_requested(sid, deadline_s=-1), repo, RecordingPublisher())
    results = await asyncio.gather(*(repo.expire_due(5, EXPIRED_REASON) for _ in range(6)))
    expired = [t.session_id for batch in results for t in batch if t.session_id in sids]
    assert len(expired) == len(set(expired))  # SKIP LOCKED: no session expired twice
    for sid in sids:
        assert await _status(repo, sid) is SessionStatus.EXPIRED


async def test_terminal_change_frees_the_admission_slot(redis_url: str) -> None:
    broker, redis = RedisBroker(redis_url), Redis.from_url(redis_url)
    org = f"org-{uuid.uuid4().hex[:8]}"
    try:
        await broker.connect()
        await redis.zadd(open_sessions_key(org), {"s1": time.time() + 60, "s2": time.time() + 60})
        announcer = StatusAnnouncer(broker, redis)
        await announcer.publish(SessionStatusChanged(session_id="s1", org_id=org, from_status=None, to_status="ready"))
        await announcer.publish(
            SessionStatusChanged(session_id="s2", org_id=org, from_status="ready", to_status="ended")
        )
        assert await redis.zrange(open_sessions_key(org), 0, -1) == [b"s1"]
    finally:
        await broker.stop()
        await redis.aclose()


async def test_the_running_store_expires_sessions_by_itself(
    store_redis_url: str, database_url: str, pool: AsyncConnectionPool
) -> None:
    sid = uuid.uuid4().hex
    settings = SessionStoreSettings(
        redis_url=store_redis_url, database_url=database_url, consumer_name=f"t-{sid}", expiry_interval_s=0.1
    )
    app = create_app(settings)
    repo = PostgresSessionRepository(pool)
    await handle_event(_requested(sid, deadline_s=0.3), repo, RecordingPublisher())
    await asyncio.wait_for(app.start(), timeout=30)
    try:
        deadline = time.monotonic() + 10
        while await asyncio.wait_for(_status(repo, sid), timeout=10) is not SessionStatus.EXPIRED:
            assert time.monotonic() < deadline, "not expired within 10 s"
            await asyncio.sleep(0.05)
    finally:
        await asyncio.wait_for(app.stop(), timeout=30)


async def test_an_expiry_is_recorded_first_and_announced_even_if_the_broker_refused(pool: AsyncConnectionPool) -> None:
    repo = PostgresSessionRepository(pool)
    sid = uuid.uuid4().hex
    await handle_event(_requested(sid, deadline_s=-1), repo, RecordingPublisher())

    class BrokerDown(RecordingPublisher):
        async def publish(self, event: Event) -> None:
            raise ConnectionError("redis unavailable")

    seen: list[Transition] = []
    with pytest.raises(ConnectionError):
        await expire_due_sessions(repo, BrokerDown(), batch=100, committed=seen.extend)
    assert await _status(repo, sid) is SessionStatus.EXPIRED  # committed before announcing
    assert sid in {t.session_id for t in seen}  # and counted (the metrics) though its announcement failed
    publisher = RecordingPublisher()
    await expire_due_sessions(repo, publisher, batch=100)  # nothing left to expire
    assert [e for e in publisher.events if e.session_id == sid] == []

    async def publish_all(events: Sequence[SessionStatusChanged]) -> None:
        for event in events:
            await publisher.publish(event)

    await repo.sweep_announcements(0.0, 1000, publish_all)  # the outbox: announced after all
    assert [(e.from_status, e.to_status) for e in publisher.events if e.session_id == sid] == [("pending", "expired")]
