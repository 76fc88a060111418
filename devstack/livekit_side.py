"""Which LiveKit the stack talks to: one decision, made in one place (and replaceable by the caller).

Today: the environment's ``LIVEKIT_URL`` when the profile honours it, else the LiveKit simulator that the
stack starts itself. A real livekit-server found or started by devstack is one more function returning a
LiveKitSide, passed to ``devstack.stack.start_stack(livekit=...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SIM_HOST = "127.0.0.1"
DEV_KEY, DEV_SECRET = "devkey", "secret"  # the simulator's (and livekit-server --dev's) credentials


@dataclass(frozen=True)
class LiveKitSide:
    """Where LiveKit answers, its API credentials, whether the stack must start the simulator, and why."""

    url: str
    api_key: str
    api_secret: str
    simulated: bool
    reason: str  # for the banner: where this LiveKit came from


def simulator(port: int) -> LiveKitSide:
    """The devstack.livekit_sim simulator the stack starts on ``port``."""
    return LiveKitSide(f"http://{SIM_HOST}:{port}", DEV_KEY, DEV_SECRET, True, "devstack.livekit_sim simulator")


def from_environment(environ: Mapping[str, str], sim_port: int) -> LiveKitSide:
    """``LIVEKIT_URL`` (with ``LIVEKIT_API_KEY`` / ``LIVEKIT_API_SECRET``) when set, else the simulator."""
    url = environ.get("LIVEKIT_URL")
    if not url:
        return simulator(sim_port)
    key, secret = environ.get("LIVEKIT_API_KEY", DEV_KEY), environ.get("LIVEKIT_API_SECRET", DEV_SECRET)
    return LiveKitSide(url, key, secret, False, "from the environment (LIVEKIT_URL)")
