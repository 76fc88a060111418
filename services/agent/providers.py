"""Speech providers: the :class:`Speaker` port, the offline default and a registry by name.

Providers are built once per job process (in the worker's setup function) and shared by its jobs.
A livekit-agents TTS plugin is added by registering a factory under a new name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from services.agent import espeak
from services.agent.settings import AgentSettings

log = structlog.get_logger(__name__)
SILENCE_SAMPLE_RATE = 48000


class ProviderError(RuntimeError):
    """A provider could not be created or made ready."""


@dataclass(frozen=True)
class Speech:
    """Synthesized speech: 16-bit signed mono PCM at ``sample_rate``; the room plays it at real time."""

    pcm: bytes
    sample_rate: int

    @property
    def duration_s(self) -> float:
        """How long the speech plays."""
        return len(self.pcm) / 2 / self.sample_rate


class Speaker(Protocol):
    """Turns text into speech the room plays (the room awaits the playout)."""

    async def prepare(self) -> None:
        """Load or check whatever the speaker needs; cheap when already warm."""

    async def synthesize(self, text: str) -> Speech:
        """The speech for ``text``."""


class OfflineSpeaker:
    """Silence as long as the text would take to say (``ms_per_char`` per character): no TTS, real playout time."""

    def __init__(self, ms_per_char: float) -> None:
        self._ms_per_char = ms_per_char

    async def prepare(self) -> None:
        """Nothing to load."""

    async def synthesize(self, text: str) -> Speech:
        """Silence of the text's length."""
        samples = round(len(text) * self._ms_per_char / 1000.0 * SILENCE_SAMPLE_RATE)
        return Speech(bytes(2 * samples), SILENCE_SAMPLE_RATE)


class EspeakSpeaker:
    """Real offline speech with eSpeak NG (library and voice data from the ``espeakng-loader`` wheel)."""

    def __init__(self, voice: str) -> None:
        self._voice = voice

    async def prepare(self) -> None:
        """Load the library (once per process; already done at process set-up)."""
        await asyncio.to_thread(espeak.synthesize, "", self._voice)

    async def synthesize(self, text: str) -> Speech:
        """Synthesize ``text`` off the event loop (a greeting costs a few milliseconds of CPU)."""
        pcm, rate = await asyncio.to_thread(espeak.synthesize, text, self._voice)
        return Speech(pcm, rate)


def espeak_or_silence(settings: AgentSettings) -> Speaker:
    """eSpeak NG when it loads, else the silent speaker (said loudly: the greeting will not be heard)."""
    try:
        espeak.synthesize("", settings.agent_voice)
    except espeak.EspeakUnavailable as exc:
        log.error("tts_unavailable_greeting_will_be_silent", error=str(exc), fallback="offline")
        return OfflineSpeaker(settings.agent_speak_ms_per_char)
    return EspeakSpeaker(settings.agent_voice)


SpeakerFactory = Callable[[AgentSettings], Speaker]

_SPEAKERS: dict[str, SpeakerFactory] = {
    "offline": lambda settings: OfflineSpeaker(settings.agent_speak_ms_per_char),
    "espeak": espeak_or_silence,
}


def register_speaker(name: str, factory: SpeakerFactory) -> None:
    """Make ``factory`` available as ``AGENT_TTS=<name>``; call before the worker starts."""
    _SPEAKERS[name] = factory


def create_speaker(settings: AgentSettings) -> Speaker:
    """Build the speaker ``settings.speaker_name`` names; :class:`ProviderError` if none is registered."""
    try:
        factory = _SPEAKERS[settings.speaker_name]
    except KeyError:
        known = ", ".join(sorted(_SPEAKERS))
        raise ProviderError(f"unknown AGENT_TTS {settings.speaker_name!r}; registered: {known}") from None
    return factory(settings)


class UnavailableSpeaker:
    """Stands in for a speaker that could not be built, so the job fails at stage "providers"."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    async def prepare(self) -> None:
        """Raise the error the speaker was built with."""
        raise ProviderError(str(self._error)) from self._error

    async def synthesize(self, text: str) -> Speech:
        """Never reached: :meth:`prepare` already failed."""
        raise ProviderError(str(self._error)) from self._error
