"""The speech and language providers a flow names (its ``agentSettings``), carried from the API to the agent.

Each is a LiveKit Inference model string (``"deepgram/nova-3"``, ``"openai/gpt-4.1-mini"``,
``"cartesia/sonic-2:<voice>"``), an installed livekit-agents plugin (``"openai"``, ``"openai:gpt-4o-mini-tts"``,
``"silero"``), or a built-in TTS (``"espeak"``, ``"silence"``); None: the agent service's default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

PROVIDER_KEYS = ("stt", "llm", "tts", "vad", "voice", "language")


class ProviderChoice(BaseModel):
    """Which STT, LLM, TTS and VAD the session's conversation uses, and the TTS voice and language."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    stt: str | None = None
    llm: str | None = None
    tts: str | None = None
    vad: str | None = None
    voice: str | None = None
    language: str | None = None

    @classmethod
    def from_agent_settings(cls, settings: Mapping[str, Any]) -> ProviderChoice:
        """The provider part of a flow's ``agentSettings`` (other keys, such as deadlines, are not the agent's)."""
        return cls.model_validate({key: settings.get(key) for key in PROVIDER_KEYS})
