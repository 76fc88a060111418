"""Which LiveKit to use, in this order: ``LIVEKIT_URL`` (+ key/secret) from the environment; a ``livekit-server``
binary on PATH or in the cache; building it with the machine's Go; the simulator. Each answer says why the better
ones were not taken."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from . import livekit_build

Source = Literal["env", "binary", "built", "simulator"]

DEV_API_KEY = "devkey"
DEV_API_SECRET = "secret"


@dataclass(frozen=True)
class LiveKitChoice:
    """Which LiveKit the stack runs on: where it answers (``env``) or which binary to start, and why."""

    source: Source
    reason: str
    url: str = ""
    api_key: str = DEV_API_KEY
    api_secret: str = DEV_API_SECRET
    binary: Path | None = None

    @property
    def real(self) -> bool:
        """True for a real LiveKit server (not the simulator)."""
        return self.source != "simulator"


def discover_livekit(env: Mapping[str, str] | None = None, *, allow_build: bool = True) -> LiveKitChoice:
    """The best LiveKit available here, in the discovery order; never raises (the simulator is the last resort)."""
    env = os.environ if env is None else env
    url = env.get("LIVEKIT_URL", "")
    if url:
        key, secret = env.get("LIVEKIT_API_KEY", ""), env.get("LIVEKIT_API_SECRET", "")
        if key and secret:
            return LiveKitChoice("env", f"LIVEKIT_URL={url} from the environment", url, key, secret)
        why = "LIVEKIT_URL is set but LIVEKIT_API_KEY / LIVEKIT_API_SECRET are not: using the LiveKit simulator"
        return LiveKitChoice("simulator", why)
    on_path = shutil.which(livekit_build.BINARY_NAME, path=env.get("PATH"))
    if on_path:
        version = binary_version(Path(on_path))
        return LiveKitChoice("binary", f"livekit-server {version} found on PATH ({on_path})", binary=Path(on_path))
    cached = livekit_build.cached_binary()
    if cached is not None:
        why = f"livekit-server {livekit_build.VERSION} from the cache ({cached})"
        return LiveKitChoice("binary", why, binary=cached)
    go = livekit_build.find_go()
    if go is None:
        return LiveKitChoice("simulator", "no Go toolchain (and no livekit-server binary): using the LiveKit simulator")
    if not allow_build:
        why = "livekit-server is not built yet (make livekit-server): using the LiveKit simulator"
        return LiveKitChoice("simulator", why)
    try:
        built = livekit_build.build(go)
    except livekit_build.BuildError as exc:
        first = str(exc).splitlines()[0]
        return LiveKitChoice("simulator", f"building livekit-server failed ({first}): using the LiveKit simulator")
    return LiveKitChoice(
        "built", f"livekit-server {livekit_build.VERSION} built with {go} in {built.seconds:.0f} s", binary=built.path
    )


def binary_version(binary: Path) -> str:
    """What ``livekit-server --version`` says (``1.13.5``), or ``"of unknown version"``."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "of unknown version"
    words = done.stdout.split()
    return words[-1] if done.returncode == 0 and words else "of unknown version"
