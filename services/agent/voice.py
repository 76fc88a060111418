"""The voice seam: how a job builds its speech models, starts the conversation, waits for a listener and speaks.

``SessionVoice`` (a livekit-agents ``AgentSession`` in the job's LiveKit room) and ``SimulatedVoice`` (the
simulator's room bus: no media, the greeting's real playout time passes) implement :class:`Voice`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from contracts.providers import ProviderChoice
from services.agent.flow_client import FlowConfig
from services.agent.offline_tts import PcmTTS
from services.agent.speech_models import Defaults, ProviderError, SpeechModels, build_models


class Voice(Protocol):
    """What the readiness pipeline needs to be heard."""

    async def prepare(self, choice: ProviderChoice) -> None:
        """Stage "providers": build the models ``choice`` names; :class:`ProviderError` saying why not."""

    async def start(self, flow: FlowConfig, user: str | None) -> None:
        """Start the conversation for ``flow`` with ``user`` (its audio goes out on the agent's track)."""

    async def wait_for_listener(self) -> None:
        """Return once someone subscribed to the agent's audio; the caller bounds it."""

    async def say(self, text: str, started: Callable[[], None]) -> None:
        """Speak ``text``, calling ``started`` when its first audio plays; return once its playout ended."""

    async def aclose(self) -> None:
        """End the conversation; safe to call more than once or before :meth:`start`."""


class PlayingRoom(Protocol):
    """The part of the simulator room the simulated voice plays into."""

    async def wait_for_listener(self) -> None:
        """Return once someone could hear the agent."""

    async def play(self, duration_s: float, started: Callable[[], None]) -> None:
        """Let ``duration_s`` of speech play out, calling ``started`` first."""


class SimulatedVoice:
    """The greeting's speech is synthesized for its length and "played" in real time: a room with no media."""

    def __init__(self, room: PlayingRoom, defaults: Defaults, setup_error: ProviderError | None = None) -> None:
        self._room = room
        self._defaults = defaults
        self._setup_error = setup_error
        self._models: SpeechModels | None = None

    async def prepare(self, choice: ProviderChoice) -> None:
        """Build the models (an unusable one fails here, exactly as in a LiveKit room)."""
        if self._setup_error is not None:
            raise self._setup_error
        self._models = build_models(choice, self._defaults)

    async def start(self, flow: FlowConfig, user: str | None) -> None:
        """Nothing to start: the simulator carries no audio to converse over."""

    async def wait_for_listener(self) -> None:
        """The room's answer."""
        await self._room.wait_for_listener()

    async def say(self, text: str, started: Callable[[], None]) -> None:
        """Synthesize ``text`` with the session's TTS and let its duration pass."""
        if self._models is None:
            raise RuntimeError("say() before prepare()")
        began = time.perf_counter()
        engine = self._models.tts
        if isinstance(engine, PcmTTS):  # a built-in engine: its PCM's length, without livekit-agents' stream per job
            duration = len(await engine.render(text)) / 2 / engine.sample_rate
        else:
            duration = 0.0
            async with engine.synthesize(text) as stream:
                async for audio in stream:
                    duration += audio.frame.duration
        # synthesis overlaps playout in a real room: only what is left of the speech still has to play
        await self._room.play(max(duration - (time.perf_counter() - began), 0.0), started)

    async def aclose(self) -> None:
        """Release the TTS's connections, if any."""
        if self._models is not None:
            await self._models.tts.aclose()
