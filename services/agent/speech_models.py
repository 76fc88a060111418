"""The conversation's STT, LLM, TTS and VAD, built from the flow's provider choice at stage "providers".

A name is resolved the way livekit-agents users write it:

- ``provider/model[:voice]`` (a slash): a LiveKit Inference model, e.g. ``"deepgram/nova-3"``;
- ``plugin`` or ``plugin:model``: the installed plugin ``livekit.plugins.<plugin>``, configured from the
  environment as the plugin documents (``OPENAI_API_KEY``, ...);
- ``espeak`` / ``silence`` (TTS only; ``offline`` is silence's older name): the built-in engines that need no
  account.

A name that cannot be used (plugin not installed, key missing, model refused) raises :class:`ProviderError`
with a reason a person can act on: the job fails at stage "providers", before the user waits for a greeting.
Nothing here downloads anything.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Literal, cast

from livekit.agents import inference, llm, stt, tts, vad

from contracts.providers import ProviderChoice
from services.agent import espeak
from services.agent.offline_tts import EspeakTTS, SilenceTTS

Kind = Literal["stt", "llm", "tts", "vad"]
PLUGIN_CLASSES: dict[Kind, str] = {"stt": "STT", "llm": "LLM", "tts": "TTS", "vad": "VAD"}
BUILTIN_TTS = frozenset({"espeak", "silence", "offline"})


class ProviderError(RuntimeError):
    """A provider could not be created; the message says which one and why."""


@dataclass(frozen=True)
class SpeechModels:
    """What the session's ``AgentSession`` runs with; no STT/LLM means it can speak but not converse."""

    tts: tts.TTS[Any]
    stt: stt.STT[Any] | None = None
    llm: llm.LLM[Any] | None = None
    vad: vad.VAD | None = None

    @property
    def missing(self) -> list[str]:
        """The models a conversation needs that were not named (said once per job in the log)."""
        return [name for name, model in (("stt", self.stt), ("llm", self.llm)) if model is None]


@dataclass(frozen=True)
class Defaults:
    """The agent service's own choices, where the flow names none."""

    tts: str = "espeak"
    voice: str = "en-us"
    silence_ms_per_char: float = 2.0


def build_models(choice: ProviderChoice, defaults: Defaults) -> SpeechModels:
    """Build every model ``choice`` names (the TTS always: the default one when none is named)."""
    return SpeechModels(
        tts=_build("tts", choice.tts or defaults.tts, choice, defaults),
        stt=_build("stt", choice.stt, choice, defaults) if choice.stt else None,
        llm=_build("llm", choice.llm, choice, defaults) if choice.llm else None,
        vad=_build("vad", choice.vad, choice, defaults) if choice.vad else None,
    )


def _build(kind: Kind, name: str, choice: ProviderChoice, defaults: Defaults) -> Any:
    try:
        if kind == "tts" and name in BUILTIN_TTS:
            return _builtin_tts(name, choice, defaults)
        if "/" in name:
            return _inference(kind, name, choice)
        return _plugin(kind, name, choice)
    except ProviderError:
        raise
    except Exception as exc:
        raise ProviderError(f"{kind} {name!r} cannot be used: {exc}") from exc


def _builtin_tts(name: str, choice: ProviderChoice, defaults: Defaults) -> tts.TTS[Any]:
    if name != "espeak":
        return SilenceTTS(defaults.silence_ms_per_char)
    voice = choice.voice or (choice.language or "").lower() or defaults.voice
    try:
        return EspeakTTS(voice)
    except espeak.EspeakUnavailable as exc:
        raise ProviderError(f"tts 'espeak' cannot be used: {exc} (voices: `espeak-ng --voices`)") from exc


def _inference(kind: Kind, name: str, choice: ProviderChoice) -> Any:
    # credentials: livekit-agents reads LIVEKIT_INFERENCE_API_KEY/_SECRET, else the LiveKit key (a LiveKit Cloud one)
    if kind == "stt":
        return inference.STT(name, **cast(dict[str, Any], _given(language=choice.language)))
    if kind == "llm":
        return inference.LLM(name)
    if kind == "tts":
        return inference.TTS(name, **cast(dict[str, Any], _given(voice=choice.voice, language=choice.language)))
    raise ProviderError(f"vad {name!r}: LiveKit Inference has no VAD; name a plugin such as 'silero'")


def _plugin(kind: Kind, name: str, choice: ProviderChoice) -> Any:
    plugin, _, model = name.partition(":")
    try:
        module = importlib.import_module(f"livekit.plugins.{plugin}")
    except ImportError as exc:
        raise ProviderError(
            f"{kind} {name!r}: the plugin is not installed; add the package livekit-plugins-{plugin} to the agent's "
            f"image, or name a LiveKit Inference model (provider/model)"
        ) from exc
    cls = getattr(module, PLUGIN_CLASSES[kind], None)
    if cls is None:
        raise ProviderError(f"{kind} {name!r}: livekit-plugins-{plugin} has no {PLUGIN_CLASSES[kind]}")
    if kind == "vad" and hasattr(cls, "load"):
        return cls.load()  # VAD plugins (silero) load their bundled model this way
    options = _given(model=model or None, voice=choice.voice, language=choice.language)
    accepted = inspect.signature(cls).parameters
    return cls(**{key: value for key, value in options.items() if key in accepted})


def _given(**options: str | None) -> dict[str, str]:
    """The options that have a value (livekit-agents takes NOT_GIVEN, not None, for "unset")."""
    return {key: value for key, value in options.items() if value}
