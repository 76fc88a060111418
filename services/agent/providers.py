"""Speech providers: the :class:`Speaker` port, the offline default and a registry by name.

Providers are built once per job process (in the worker's setup function) and shared by its jobs.
A livekit-agents TTS plugin is added by registering a factory under a new name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from services.agent.settings import AgentSettings


class ProviderError(RuntimeError):
    """A provider could not be created or made ready."""


class Speaker(Protocol):
    """Says text to the room; :meth:`say` returns only once playout has finished."""

    async def prepare(self) -> None:
        """Load or check whatever the speaker needs; cheap when already warm."""

    async def say(self, text: str) -> None:
        """Speak ``text`` and wait for the playout to finish."""


class OfflineSpeaker:
    """No audio: real time passes while it "speaks" (``ms_per_char`` per character), like a playout."""

    def __init__(self, ms_per_char: float) -> None:
        self._ms_per_char = ms_per_char

    async def prepare(self) -> None:
        """Nothing to load."""

    async def say(self, text: str) -> None:
        """Wait as long as the text would take to play."""
        await asyncio.sleep(len(text) * self._ms_per_char / 1000.0)


SpeakerFactory = Callable[[AgentSettings], Speaker]

_SPEAKERS: dict[str, SpeakerFactory] = {
    "offline": lambda settings: OfflineSpeaker(settings.agent_speak_ms_per_char),
}


def register_speaker(name: str, factory: SpeakerFactory) -> None:
    """Make ``factory`` available as ``AGENT_TTS=<name>``; call before the worker starts."""
    _SPEAKERS[name] = factory


def create_speaker(settings: AgentSettings) -> Speaker:
    """Build the speaker ``settings.agent_tts`` names; :class:`ProviderError` if none is registered."""
    try:
        factory = _SPEAKERS[settings.agent_tts]
    except KeyError:
        known = ", ".join(sorted(_SPEAKERS))
        raise ProviderError(f"unknown AGENT_TTS {settings.agent_tts!r}; registered: {known}") from None
    return factory(settings)


class UnavailableSpeaker:
    """Stands in for a speaker that could not be built, so the job fails at stage "providers"."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    async def prepare(self) -> None:
        """Raise the error the speaker was built with."""
        raise ProviderError(str(self._error)) from self._error

    async def say(self, text: str) -> None:
        """Never reached: :meth:`prepare` already failed."""
        raise ProviderError(str(self._error)) from self._error
