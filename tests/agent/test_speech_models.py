"""The conversation's models from the flow's provider choice: built-ins, LiveKit Inference strings, plugins, and
the clear reason when a named one cannot be used."""

from __future__ import annotations

import array
import math
import re

import pytest
from livekit.agents import JobExecutorType, JobProcess, inference
from livekit.plugins import openai

from contracts.providers import ProviderChoice
from services.agent import espeak
from services.agent.offline_tts import EspeakTTS, PcmTTS, SilenceTTS
from services.agent.settings import AgentSettings
from services.agent.speech_models import Defaults, ProviderError, build_models
from services.agent.voice import SimulatedVoice
from services.agent.worker import prepare_process, speech_defaults
from tests.agent.fakes import FakeRoom

DEFAULTS = Defaults()


async def speech_of(engine: PcmTTS, text: str) -> bytes:
    """All the PCM ``engine`` synthesizes for ``text``, through livekit-agents' own stream."""
    async with engine.synthesize(text) as stream:
        return b"".join([bytes(audio.frame.data) async for audio in stream])


async def test_the_default_tts_is_espeak_and_speaks_audibly_with_no_accounts() -> None:
    models = build_models(ProviderChoice(), speech_defaults(AgentSettings(dev_mode=True)))
    assert isinstance(models.tts, EspeakTTS) and models.missing == ["stt", "llm"]
    samples = array.array("h", await speech_of(models.tts, "Hello, how can I help?"))
    duration_s = len(samples) / models.tts.sample_rate
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    assert 0.5 < duration_s < 5.0 and rms > 300.0  # real speech, not silence


def test_on_the_simulator_room_bus_the_default_is_silence() -> None:
    # no media there: a greeting's real speech would only cost CPU and make every simulated start-up slower
    settings = AgentSettings(dev_mode=True, agent_room_backend="simulator")
    assert isinstance(build_models(ProviderChoice(), speech_defaults(settings)).tts, SilenceTTS)
    settings = AgentSettings(dev_mode=True, agent_room_backend="simulator", agent_tts="espeak")
    assert isinstance(build_models(ProviderChoice(), speech_defaults(settings)).tts, EspeakTTS)


async def test_the_silence_tts_is_as_long_as_the_text() -> None:
    models = build_models(ProviderChoice(tts="silence"), Defaults(silence_ms_per_char=10.0))
    assert isinstance(models.tts, SilenceTTS)
    pcm = await speech_of(models.tts, "x" * 50)
    # livekit-agents pads the last frame
    assert len(pcm) / 2 / models.tts.sample_rate == pytest.approx(0.5, abs=0.025) and set(pcm) == {0}


def test_the_flows_voice_or_language_picks_the_espeak_voice() -> None:
    assert build_models(ProviderChoice(tts="espeak", voice="fr"), DEFAULTS).tts.model == "espeak-ng/fr"
    assert build_models(ProviderChoice(tts="espeak", language="de"), DEFAULTS).tts.model == "espeak-ng/de"
    with pytest.raises(ProviderError, match=re.escape("tts 'espeak' cannot be used: eSpeak NG has no voice 'xx-nope'")):
        build_models(ProviderChoice(voice="xx-nope"), DEFAULTS)


def test_livekit_inference_model_strings_become_inference_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_API_KEY", "APIkey")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "a-secret")
    choice = ProviderChoice(stt="deepgram/nova-3", llm="openai/gpt-4.1-mini", tts="cartesia/sonic-2:voice-1")
    models = build_models(choice, DEFAULTS)
    assert isinstance(models.stt, inference.STT) and isinstance(models.llm, inference.LLM)
    assert isinstance(models.tts, inference.TTS) and models.missing == []
    assert models.llm.model == "openai/gpt-4.1-mini"


def test_an_inference_model_without_credentials_says_which_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LIVEKIT_API_KEY", "LIVEKIT_INFERENCE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ProviderError, match=re.escape("tts 'cartesia/sonic-2' cannot be used: api_key is required")):
        build_models(ProviderChoice(tts="cartesia/sonic-2"), DEFAULTS)


def test_an_installed_plugin_is_built_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    models = build_models(ProviderChoice(tts="openai:gpt-4o-mini-tts", voice="alloy", llm="openai"), DEFAULTS)
    assert isinstance(models.tts, openai.TTS) and models.tts.model == "gpt-4o-mini-tts"
    assert isinstance(models.llm, openai.LLM)


@pytest.mark.parametrize(
    ("choice", "reason"),
    [
        (
            ProviderChoice(tts="openai"),
            "tts 'openai' cannot be used: Missing credentials. Please pass an `api_key`",  # OPENAI_API_KEY unset
        ),
        (
            ProviderChoice(stt="nosuchvendor"),
            "stt 'nosuchvendor': the plugin is not installed; add the package livekit-plugins-nosuchvendor",
        ),
        (ProviderChoice(vad="silero/v5"), "vad 'silero/v5': LiveKit Inference has no VAD"),
    ],
)
def test_a_named_but_unusable_provider_says_why(
    monkeypatch: pytest.MonkeyPatch, choice: ProviderChoice, reason: str
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ProviderError, match=re.escape(reason)):
        build_models(choice, DEFAULTS)


async def test_an_unusable_default_tts_fails_the_providers_stage_of_every_job_not_the_process() -> None:
    settings = AgentSettings(dev_mode=True, agent_room_backend="simulator", agent_tts="no-such-tts")
    proc = JobProcess(executor_type=JobExecutorType.THREAD, user_arguments=None, http_proxy=None)
    prepare_process(settings, proc)
    voice = SimulatedVoice(FakeRoom(), speech_defaults(settings), proc.userdata["setup_error"])
    with pytest.raises(ProviderError, match="livekit-plugins-no-such-tts"):
        await voice.prepare(ProviderChoice())


def test_without_espeak_the_reason_says_how_to_go_on(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(text: str, voice: str = "en-us") -> tuple[bytes, int]:
        raise espeak.EspeakUnavailable("the espeakng-loader package is not installed")

    monkeypatch.setattr(espeak, "synthesize", unavailable)
    with pytest.raises(ProviderError, match="espeakng-loader package is not installed"):
        build_models(ProviderChoice(), DEFAULTS)


async def test_speech_of_no_length_is_one_silent_frame_not_an_error() -> None:
    # AGENT_SPEAK_MS_PER_CHAR=0 (benchmarks): livekit-agents fails a synthesis that pushed no audio at all
    for engine in (SilenceTTS(ms_per_char=0.0), EspeakTTS("en-us")):
        pcm = await speech_of(engine, "" if isinstance(engine, EspeakTTS) else "Hello")
        assert 0 < len(pcm) <= 2 * engine.sample_rate // 50 and set(pcm) == {0}  # one frame, at most 20 ms
