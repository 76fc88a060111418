"""The agent's small adapters: settings from the environment and the Redis publisher."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from contracts.events import AgentJoined
from contracts.streams import AGENT_JOINED
from services.agent.events import RedisEventPublisher
from services.agent.settings import AgentSettings
from tests.agent.stream_events import stream_events


def test_settings_come_from_unprefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEV_MODE", "true")
    monkeypatch.setenv("LIVEKIT_AGENT_NAME", "support-bot")
    monkeypatch.setenv("AGENT_ROOM_BACKEND", "simulator")
    monkeypatch.setenv("AGENT_JOB_EXECUTOR", "thread")
    monkeypatch.setenv("AGENT_WAIT_FOR_USER", "false")
    monkeypatch.setenv("AGENT_SPEAK_MS_PER_CHAR", "0")
    settings = AgentSettings()
    assert settings.livekit_agent_name == "support-bot"
    assert (settings.agent_room_backend, settings.agent_job_executor) == ("simulator", "thread")
    assert settings.agent_wait_for_user is False and settings.agent_speak_ms_per_char == 0


def test_settings_refuse_the_dev_secret_outside_dev_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEV_MODE", raising=False)
    monkeypatch.delenv("LIVEKIT_API_SECRET", raising=False)
    with pytest.raises(ValueError, match="LIVEKIT_API_SECRET"):
        AgentSettings()


def test_settings_reject_an_unknown_backend() -> None:
    with pytest.raises(ValueError, match="agent_room_backend"):
        AgentSettings(dev_mode=True, agent_room_backend="webrtc")


async def test_redis_publisher_writes_the_event_to_its_stream(redis_url: str) -> None:
    sid = f"s-{uuid.uuid4().hex}"
    publisher = RedisEventPublisher(redis_url)
    event = AgentJoined(session_id=sid, room_name="room-x", job_id="job-x", correlation_id=f"corr-{sid}")
    try:
        await publisher.publish(event)
    finally:
        await publisher.close()
    client = Redis.from_url(redis_url)
    try:
        entries = await stream_events(client, AGENT_JOINED, count=50)
    finally:
        await client.aclose()
    ((header, body),) = [(h, b) for h, b in entries if b.get("session_id") == sid]
    assert AgentJoined.model_validate(body) == event
    assert f"corr-{sid}".encode() in header  # the FastStream envelope carries it too
