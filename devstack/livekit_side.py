"""Which LiveKit the stack talks to: one decision, made in one place (and replaceable by the caller).

``discovered``: devstack.livekit_server's order — ``LIVEKIT_URL`` from the environment, a ``livekit-server``
binary (PATH or cache), the simulator — as a LiveKitSide the stack starts (a real server or the simulator).
``from_environment`` / ``simulator``: the older, narrower choices, for profiles that never run a real server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devstack.livekit_discovery import discover_livekit

SIM_HOST = "127.0.0.1"
DEV_KEY, DEV_SECRET = "devkey", "secret"  # the simulator's (and livekit-server --dev's) credentials


@dataclass(frozen=True)
class LiveKitSide:
    """Where LiveKit answers, its API credentials, what the stack must start (the simulator, or ``server``: a
    livekit-server binary), and why this one (for the banner)."""

    url: str
    api_key: str
    api_secret: str
    simulated: bool
    reason: str  # for the banner: where this LiveKit came from, and why not a better one
    server: Path | None = None  # a real livekit-server the stack starts on ``url``'s port

    @property
    def started_by_stack(self) -> bool:
        """The stack starts this LiveKit (the simulator or a livekit-server binary) and stops it."""
        return self.simulated or self.server is not None


def simulator(port: int, reason: str = "devstack.livekit_sim simulator") -> LiveKitSide:
    """The devstack.livekit_sim simulator the stack starts on ``port``."""
    return LiveKitSide(f"http://{SIM_HOST}:{port}", DEV_KEY, DEV_SECRET, True, reason)


def from_environment(environ: Mapping[str, str], sim_port: int) -> LiveKitSide:
    """``LIVEKIT_URL`` (with ``LIVEKIT_API_KEY`` / ``LIVEKIT_API_SECRET``) when set, else the simulator."""
    url = environ.get("LIVEKIT_URL")
    if not url:
        return simulator(sim_port)
    key, secret = environ.get("LIVEKIT_API_KEY", DEV_KEY), environ.get("LIVEKIT_API_SECRET", DEV_SECRET)
    return LiveKitSide(url, key, secret, False, "from the environment (LIVEKIT_URL)")


def discovered(environ: Mapping[str, str], port: int) -> LiveKitSide:
    """The best LiveKit here: ``LIVEKIT_URL``, else a livekit-server binary the stack starts on ``port`` (on
    loopback), else the simulator on ``port``. Never builds (``make livekit-server`` does, before ``make dev``)."""
    choice = discover_livekit(environ, allow_build=False)
    if choice.source == "env":
        return LiveKitSide(choice.url, choice.api_key, choice.api_secret, False, choice.reason)
    if choice.binary is not None:
        why = f"{choice.reason}, started by the stack: real WebRTC (LIVEKIT_URL not set)"
        return LiveKitSide(f"http://{SIM_HOST}:{port}", DEV_KEY, DEV_SECRET, False, why, server=choice.binary)
    return simulator(port, f"devstack.livekit_sim simulator: {choice.reason.split(': using')[0]}")
