"""A LiveKit server simulator speaking the real wire protocols (Twirp API, ``/agent`` worker socket).

It does no media: presence and data packets go over its own room bus (``/sim/rtc``, see README.md).
Use :func:`run_simulator` in tests, ``python -m devstack.livekit_sim`` from a shell.
"""

from .app import Simulator, SimulatorConfig, run_simulator
from .state import SimState

__all__ = ["SimState", "Simulator", "SimulatorConfig", "run_simulator"]
