"""Offline speech synthesis with eSpeak NG, from the ``espeakng-loader`` wheel (library and voice data bundled).

Nothing is downloaded at run time and no API key is needed: the development default voice. The library keeps
global state, so one synthesis runs at a time per process (a lock); a greeting takes a few milliseconds of CPU.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: synthesize into the callback, no sound device
CHARS_UTF8 = 1
POS_CHARACTER = 1
EE_OK = 0

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_lock = threading.Lock()
_engine: tuple[Any, int] | None = None  # (library, sample rate) once initialised


class EspeakUnavailable(RuntimeError):
    """eSpeak NG is not installed or could not start."""


def _load() -> tuple[Any, int]:
    """Load and initialise the bundled library once per process; returns it and its sample rate."""
    global _engine
    if _engine is not None:
        return _engine
    try:
        import espeakng_loader
    except ImportError as exc:
        raise EspeakUnavailable("the espeakng-loader package is not installed") from exc
    try:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
    except OSError as exc:
        raise EspeakUnavailable(f"cannot load libespeak-ng: {exc}") from exc
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
        ctypes.c_void_p, ctypes.c_void_p,
    ]  # fmt: skip
    data = espeakng_loader.get_data_path().encode()
    rate = int(lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0))
    if rate <= 0:
        raise EspeakUnavailable(f"espeak_Initialize failed ({rate}) with data at {data.decode()}")
    _engine = (lib, rate)
    return _engine


def synthesize(text: str, voice: str = "en-us") -> tuple[bytes, int]:
    """Speak ``text`` into 16-bit mono PCM: returns (samples, sample rate); blocking, run it in a thread."""
    with _lock:
        lib, rate = _load()
        chunks: list[bytes] = []

        def collect(wav: Any, count: int, _events: Any) -> int:
            if count > 0 and wav:
                chunks.append(ctypes.string_at(wav, count * 2))
            return 0  # 0: go on synthesizing

        callback = _SYNTH_CALLBACK(collect)  # kept referenced until Synth returns
        lib.espeak_SetSynthCallback(callback)
        if lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
            raise EspeakUnavailable(f"eSpeak NG has no voice {voice!r}")
        encoded = text.encode() + b"\0"
        status = lib.espeak_Synth(encoded, len(encoded), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        if status != EE_OK:
            raise EspeakUnavailable(f"espeak_Synth failed with status {status}")
        return b"".join(chunks), rate
