"""Every way a session ends by itself: a ready session reaches its terminal status with its code and its
organisation's admission slot is freed, on real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from faststream.redis import RedisBroker
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from contracts.endings import EndCode
from contracts.events import (
    AgentJobEnded,
    AgentJoined,
    AgentReady,
    Event,
    SessionDispatched,
    SessionEndRequested,
    SessionRequested,
    UserPresenceChanged,
)
from contracts.keys import open_sessions_key
from services.session_store.announcing import StatusAnnouncer
from services.session_store.expiry import EndRules, end_overdue_sessions
from services.session_store.lifecycle import handle_event
from services.session_store.repository import PostgresSessionRepository

SLOW = EndRules(max_duration_s=7200, user_left_grace_s=3600, no_user_timeout_s=3600)


@pytest.fixture
async def announcer(store_redis_url: str) -> AsyncIterator[tuple[StatusAnnouncer, Redis]]:
    broker, redis = RedisBroker(store_redis_url), Redis.from_url(store_redis_url)
    await broker.connect()
    try:
        yield StatusAnnouncer(broker, redis), redis
    finally:
        await broker.stop()
        await redis.aclose()


class Session:
    """One ready session of a fresh organisation holding an admission slot."""

    def __init__(self, repo: PostgresSessionRepository, announcer: StatusAnnouncer, redis: Redis) -> None:
        self.sid, self.org = uuid.uuid4().hex, f"org-{uuid.uuid4().hex[:8]}"
        self.room = f"session-{self.sid}"
        self.repo, self.announcer, self.redis = repo, announcer, redis

    async def ready(self, max_duration_s: float | None = None, user_sid: str | None = "PA_user") -> Session:
        await self.redis.zadd(open_sessions_key(self.org), {self.sid: time.time() + 7200})
        request = SessionRequested(
            session_id=self.sid,
            org_id=self.org,
            flow_id="f",
            room_name=self.room,
            greeting="Hi",
            ready_deadline=datetime.now(UTC) + timedelta(seconds=30),
            max_duration_s=max_duration_s,
        )
        for event in (
            request,
            SessionDispatched(session_id=self.sid, room_name=self.room, dispatch_id="AD"),
            AgentJoined(session_id=self.sid, room_name=self.room, job_id="AJ"),
            AgentReady(session_id=self.sid, greeting="Hi"),
        ):
            await self.apply(event)
        if user_sid is not None:
            await self.presence(True, user_sid, ago_s=5)
        assert await self.status() == ("ready", None)
        return self

    async def apply(self, event: Event) -> None:
        await handle_event(event, self.repo, self.announcer)

    async def presence(self, present: bool, sid: str, ago_s: float = 0.0, source: str = "livekit") -> None:
        at = datetime.now(UTC) - timedelta(seconds=ago_s)
        event = UserPresenceChanged(
            session_id=self.sid,
            room_name=self.room,
            identity=f"user-{self.sid}",
            participant_sid=sid if source == "livekit" else "",
            present=present,
            source=source,  # type: ignore[arg-type]
            occurred_at=at,
        )
        await self.apply(event)

    async def status(self) -> tuple[str, str | None]:
        row = await self.repo.get(self.sid)
        assert row is not None
        return row["status"], row["end_code"]

    async def holds_slot(self) -> bool:
        return await self.redis.zscore(open_sessions_key(self.org), self.sid) is not None


@pytest.fixture
def new_session(pool: AsyncConnectionPool, announcer: tuple[StatusAnnouncer, Redis]) -> Callable[[], Session]:
    repo = PostgresSessionRepository(pool)
    return lambda: Session(repo, *announcer)


def job_ended(session: Session, code: EndCode, was_ready: bool = True) -> AgentJobEnded:
    return AgentJobEnded(session_id=session.sid, job_id="AJ", code=code, reason=f"because {code}", was_ready=was_ready)


@pytest.mark.parametrize(
    ("make_event", "status", "code"),
    [
        (lambda s: SessionEndRequested(session_id=s.sid), "ended", "ended_by_request"),
        (lambda s: SessionEndRequested(session_id=s.sid, code=EndCode.ROOM_CLOSED), "ended", "room_closed"),
        (lambda s: job_ended(s, EndCode.USER_LEFT), "ended", "user_left"),
        (lambda s: job_ended(s, EndCode.ROOM_CLOSED), "ended", "room_closed"),
        (lambda s: job_ended(s, EndCode.AGENT_JOB_ENDED), "ended", "agent_job_ended"),
        (lambda s: job_ended(s, EndCode.NO_USER_JOINED), "ended", "no_user_joined"),
        (lambda s: job_ended(s, EndCode.AGENT_CRASHED), "failed", "agent_crashed"),
    ],
    ids=["delete", "room_finished", "agent_user_left", "agent_room_closed", "job_shutdown", "agent_no_user", "crash"],
)
async def test_each_end_event_moves_a_ready_session_to_its_terminal_status_and_frees_its_slot(
    new_session: Callable[[], Session], make_event: Callable[[Session], Event], status: str, code: str
) -> None:
    session = await new_session().ready()
    assert await session.holds_slot()
    await session.apply(make_event(session))
    assert await session.status() == (status, code)
    assert not await session.holds_slot()
    await session.apply(job_ended(session, EndCode.AGENT_JOB_ENDED))  # a later end changes nothing
    assert await session.status() == (status, code)


async def _scan_until(
    session: Session, rules: EndRules, code: str, scan: Callable[[EndRules], Awaitable[int]], timeout: float = 10
) -> None:
    deadline = time.monotonic() + timeout
    while await session.status() != ("ended", code):
        assert time.monotonic() < deadline, f"not ended as {code} within {timeout} s: {await session.status()}"
        await scan(rules)
        await asyncio.sleep(0.05)


@pytest.fixture
def scan(pool: AsyncConnectionPool, announcer: tuple[StatusAnnouncer, Redis]) -> Callable[[EndRules], Awaitable[int]]:
    repo = PostgresSessionRepository(pool)
    return lambda rules: end_overdue_sessions(repo, announcer[0], 100, rules)


async def test_a_session_past_its_flows_maximum_duration_ends(
    new_session: Callable[[], Session], scan: Callable[[EndRules], Awaitable[int]]
) -> None:
    session = await new_session().ready(max_duration_s=0.5)
    other = await new_session().ready()  # the default (2 h) applies to it
    await _scan_until(session, SLOW, "max_duration", scan)
    assert not await session.holds_slot()
    assert await other.status() == ("ready", None) and await other.holds_slot()
    row = await session.repo.get(session.sid)
    assert row is not None and row["reason"] == "The session reached its maximum duration."


async def test_the_default_maximum_duration_applies_to_sessions_of_flows_without_one(
    new_session: Callable[[], Session], scan: Callable[[EndRules], Awaitable[int]]
) -> None:
    session = await new_session().ready()
    rules = EndRules(max_duration_s=0.5, user_left_grace_s=3600, no_user_timeout_s=3600)
    await _scan_until(session, rules, "max_duration", scan)
    assert not await session.holds_slot()


async def test_a_user_who_left_ends_the_session_after_the_grace_unless_back(
    new_session: Callable[[], Session], scan: Callable[[EndRules], Awaitable[int]]
) -> None:
    rules = EndRules(max_duration_s=7200, user_left_grace_s=0.5, no_user_timeout_s=3600)
    gone = await new_session().ready()
    await gone.presence(False, "PA_user", ago_s=1)
    back = await new_session().ready()
    await back.presence(False, "PA_user", ago_s=1)
    await back.presence(True, "PA_again")  # reloaded the page: a new connection
    kicked = await new_session().ready(user_sid="PA_old")
    await kicked.presence(True, "PA_new")  # same identity joined again; the old connection is removed after
    await kicked.presence(False, "PA_old", ago_s=-0.1)
    seen_by_agent = await new_session().ready()
    await seen_by_agent.presence(False, "PA_user", ago_s=1)
    await seen_by_agent.presence(True, "", source="agent")  # the agent saw the user come back
    await _scan_until(gone, rules, "user_left", scan)
    assert not await gone.holds_slot()
    for session in (back, kicked, seen_by_agent):
        assert await session.status() == ("ready", None)
        assert await session.holds_slot()


async def test_a_ready_session_nobody_joined_ends_after_the_wait(
    new_session: Callable[[], Session], scan: Callable[[EndRules], Awaitable[int]]
) -> None:
    rules = EndRules(max_duration_s=7200, user_left_grace_s=3600, no_user_timeout_s=0.5)
    nobody = await new_session().ready(user_sid=None)
    joined = await new_session().ready()
    joined_per_agent = await new_session().ready(user_sid=None)
    await joined_per_agent.presence(True, "", source="agent")
    await _scan_until(nobody, rules, "no_user_joined", scan)
    assert not await nobody.holds_slot()
    for session in (joined, joined_per_agent):
        assert await session.status() == ("ready", None)


async def test_presence_before_the_request_is_kept(new_session: Callable[[], Session]) -> None:
    session = new_session()
    await session.presence(True, "PA_early")  # under a backlog the request may be recorded later
    await session.ready(user_sid=None)
    row = await session.repo.get(session.sid)
    assert row is not None and row["user_sid"] == "PA_early" and row["org_id"] == session.org


async def test_a_job_that_ends_before_ready_fails_the_session(new_session: Callable[[], Session]) -> None:
    session = new_session()
    await session.redis.zadd(open_sessions_key(session.org), {session.sid: time.time() + 7200})
    await session.apply(
        SessionRequested(
            session_id=session.sid,
            org_id=session.org,
            flow_id="f",
            room_name=session.room,
            greeting="Hi",
            ready_deadline=datetime.now(UTC) + timedelta(seconds=30),
        )
    )
    await session.apply(job_ended(session, EndCode.NO_USER_JOINED, was_ready=False))  # before agent.failed
    assert await session.status() == ("failed", "no_user_joined")
    assert not await session.holds_slot()
