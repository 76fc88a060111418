"""The fidelity suite's servers: the real LiveKit server and the simulator, each shared by the whole run."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from devstack.livekit_server import RunningLiveKit
from devstack.livekit_sim import Simulator, SimulatorConfig, run_simulator


@pytest.fixture(scope="session")
async def simulator() -> AsyncIterator[Simulator]:
    """One simulator for the suite, with livekit-server's defaults (empty_timeout 300 s, departure_timeout 20 s) and,
    as the real server's config here (devstack.livekit_server.server_config), ``room.auto_create: false``."""
    async with run_simulator(config=SimulatorConfig(auto_create=False)) as sim:
        yield sim


@pytest.fixture(scope="session")
def simulated_livekit(simulator: Simulator) -> RunningLiveKit:
    """The simulator, described like a real server."""
    return RunningLiveKit(simulator.url, simulator.config.api_key, simulator.config.api_secret)


@pytest.fixture(params=["real", "simulator"])
def livekit(request: pytest.FixtureRequest) -> RunningLiveKit:
    """The real server, then the simulator: a test using it must pass on both."""
    name = "real_livekit" if request.param == "real" else "simulated_livekit"
    server: RunningLiveKit = request.getfixturevalue(name)
    return server
