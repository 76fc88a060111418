"""The agent's small adapters: settings from the environment, the speaker registry, the Redis publisher."""

from __future__ import annotations

import array
import math
import uuid

import pytest
from livekit.agents import JobExecutorType, JobProcess
from redis.asyncio import Redis

from contracts.events import AgentJoined
from contracts.streams import AGENT_JOINED
from services.agent import espeak
from services.agent.events import RedisEventPublisher
from services.agent.providers import EspeakSpeaker, OfflineSpeaker, ProviderError, UnavailableSpeaker, create_speaker
from services.agent.settings import AgentSettings
from services.agent.worker import prepare_process
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


async def test_unknown_tts_fails_the_providers_stage_not_the_process() -> None:
    settings = AgentSettings(dev_mode=True, agent_tts="no-such-tts")
    with pytest.raises(ProviderError, match="no-such-tts"):
        create_speaker(settings)
    proc = JobProcess(executor_type=JobExecutorType.THREAD, user_arguments=None, http_proxy=None)
    prepare_process(settings, proc)
    speaker = proc.userdata["speaker"]
    assert isinstance(speaker, UnavailableSpeaker)
    with pytest.raises(ProviderError, match="no-such-tts"):
        await speaker.prepare()
    assert isinstance(create_speaker(AgentSettings(dev_mode=True, agent_tts="offline")), OfflineSpeaker)


async def test_the_default_speaker_is_espeak_and_speaks_audibly_with_no_accounts() -> None:
    speaker = create_speaker(AgentSettings(dev_mode=True))
    assert isinstance(speaker, EspeakSpeaker)
    await speaker.prepare()
    speech = await speaker.synthesize("Hello, how can I help?")
    samples = array.array("h", speech.pcm)
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    assert 0.5 < speech.duration_s < 5.0 and rms > 300.0  # real speech, not silence


def test_without_espeak_the_default_falls_back_to_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(text: str, voice: str = "en-us") -> tuple[bytes, int]:
        raise espeak.EspeakUnavailable("the espeakng-loader package is not installed")

    monkeypatch.setattr(espeak, "synthesize", unavailable)
    assert isinstance(create_speaker(AgentSettings(dev_mode=True)), OfflineSpeaker)


def test_on_the_simulator_room_bus_the_default_is_silence() -> None:
    # no media there: a greeting's real speech would only cost CPU and make every simulated start-up slower
    settings = AgentSettings(dev_mode=True, agent_room_backend="simulator")
    assert isinstance(create_speaker(settings), OfflineSpeaker)
    settings = AgentSettings(dev_mode=True, agent_room_backend="simulator", agent_tts="espeak")
    assert isinstance(create_speaker(settings), EspeakSpeaker)


async def test_the_offline_speaker_is_silence_as_long_as_the_text() -> None:
    speech = await OfflineSpeaker(ms_per_char=10.0).synthesize("x" * 50)
    assert speech.duration_s == pytest.approx(0.5) and set(speech.pcm) == {0}


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
