"""The room sweep's live sessions on a real Redis: due times kept on re-tracking, claims disjoint and leased."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from services.dispatcher.live_sessions import RedisLiveSessions
from services.dispatcher.room_sweep import LiveSession


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def _session() -> LiveSession:
    sid = uuid.uuid4().hex
    return LiveSession(sid, f"session-{sid}", f"corr-{sid[:6]}")


async def test_track_claim_untrack(redis: Redis) -> None:
    live = RedisLiveSessions(redis, f"agent-{uuid.uuid4().hex[:8]}")
    session = _session()
    await live.track(session, 100.0)
    await live.track(session, 500.0)  # ready after agent_joined: the first due time stays
    assert await live.claim_due(99.0, 200.0, 10) == []
    assert await live.claim_due(100.0, 200.0, 10) == [session]
    assert await live.claim_due(150.0, 300.0, 10) == []  # leased until 200
    assert await live.claim_due(200.0, 300.0, 10) == [session]
    await live.untrack(session.session_id)
    assert await live.claim_due(1e9, 2e9, 10) == [] and await live.watched() == 0


async def test_replicas_claim_disjoint_sessions(redis: Redis) -> None:
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    replicas = [RedisLiveSessions(redis, agent) for _ in range(3)]
    sessions = [_session() for _ in range(30)]
    for session in sessions:
        await replicas[0].track(session, 1.0)
    claims = await asyncio.gather(*(r.claim_due(10.0, 100.0, 8) for r in replicas))
    claimed = [s.session_id for claim in claims for s in claim]
    assert len(claimed) == len(set(claimed)) == 24
