"""Built-in livekit-agents TTS engines that need no account and download nothing: eSpeak NG, and silence.

``EspeakTTS`` speaks with the library and voice data of the ``espeakng-loader`` wheel (the development default);
``SilenceTTS`` plays silence as long as the text would take to say (tests, benchmarks, and rooms with no media).
"""

from __future__ import annotations

import asyncio
import uuid
from abc import abstractmethod
from typing import Any

from livekit.agents import APIConnectOptions, tts
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS

from services.agent import espeak

SILENCE_SAMPLE_RATE = 48000


class PcmTTS(tts.TTS[Any]):
    """A non-streaming TTS whose engine renders a whole text to 16-bit mono PCM at ``sample_rate``."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False), sample_rate=sample_rate, num_channels=1)

    @abstractmethod
    async def render(self, text: str) -> bytes:
        """The PCM for ``text``."""

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        """One synthesis of ``text`` (the whole text at once)."""
        return _PcmStream(tts=self, input_text=text, conn_options=conn_options)


class EspeakTTS(PcmTTS):
    """eSpeak NG; :class:`espeak.EspeakUnavailable` if it cannot speak (library missing, unknown voice)."""

    def __init__(self, voice: str) -> None:
        _, rate = espeak.synthesize("", voice)  # loads the library once per process and checks the voice
        super().__init__(rate)
        self.voice = voice

    @property
    def model(self) -> str:
        """The engine and voice, for livekit-agents' logs and metrics."""
        return f"espeak-ng/{self.voice}"

    @property
    def provider(self) -> str:
        """The engine's name, for livekit-agents' logs and metrics."""
        return "espeak-ng"

    async def render(self, text: str) -> bytes:
        """Speech off the event loop (a greeting costs a few milliseconds of CPU)."""
        pcm, _ = await asyncio.to_thread(espeak.synthesize, text, self.voice)
        return pcm


class SilenceTTS(PcmTTS):
    """Silence of ``ms_per_char`` per character: real playout time, no speech engine."""

    def __init__(self, ms_per_char: float) -> None:
        super().__init__(SILENCE_SAMPLE_RATE)
        self._ms_per_char = ms_per_char

    @property
    def model(self) -> str:
        """What it plays, for livekit-agents' logs and metrics."""
        return "silence"

    @property
    def provider(self) -> str:
        """This project, for livekit-agents' logs and metrics."""
        return "agentready"

    async def render(self, text: str) -> bytes:
        """Silence as long as ``text`` would take to say."""
        return bytes(2 * round(len(text) * self._ms_per_char / 1000.0 * SILENCE_SAMPLE_RATE))


class _PcmStream(tts.ChunkedStream):
    """One synthesis by a :class:`PcmTTS`, emitted in one piece."""

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        engine = self._tts
        assert isinstance(engine, PcmTTS)
        pcm = await engine.render(self.input_text)
        output_emitter.initialize(
            request_id=uuid.uuid4().hex, sample_rate=engine.sample_rate, num_channels=1, mime_type="audio/pcm"
        )
        # nothing to say still plays one 10 ms frame: livekit-agents refuses a synthesis that pushed no audio
        output_emitter.push(pcm or bytes(2 * engine.sample_rate // 100))
        output_emitter.flush()
