"""The same livekit-api calls against livekit-server and the simulator: every observable difference must be in the
documented allowance (allowance.py, devstack/livekit_sim/README.md)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from livekit import api

from devstack.livekit_server import RunningLiveKit

from .allowance import ALLOWANCE, unexplained
from .observe import Normaliser
from .scenarios import SCENARIOS, Scenario


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [1]}}`` -> ``{"a.b[0]": 1}``; empty containers are kept as leaves."""
    if isinstance(value, dict) and value:
        pairs = ((f"{prefix}.{key}" if prefix else key, item) for key, item in value.items())
        return {k: v for path, item in pairs for k, v in flatten(item, path).items()}
    if isinstance(value, list) and value:
        return {k: v for i, item in enumerate(value) for k, v in flatten(item, f"{prefix}[{i}]").items()}
    return {prefix: value}


def differences(real: dict[str, Any], simulated: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Every field path whose value differs (``<step>:<path>``), with (real, simulator) values."""
    flat_real, flat_sim = flatten(real), flatten(simulated)
    out: dict[str, tuple[Any, Any]] = {}
    for path in sorted(set(flat_real) | set(flat_sim)):
        left, right = flat_real.get(path, "<absent>"), flat_sim.get(path, "<absent>")
        if left != right:
            step, _, rest = path.partition(".")
            out[f"{step}:{rest}"] = (_short(left), _short(right))
    return out


def _short(value: Any) -> Any:
    return value[:120] + "..." if isinstance(value, str) and len(value) > 120 else value


async def run(server: RunningLiveKit, scenario: Scenario, name: str) -> dict[str, Any]:
    async with api.LiveKitAPI(server.url, server.api_key, server.api_secret, failover=False) as lk:
        observed = await scenario(lk, name)
    normalised: dict[str, Any] = Normaliser()(observed)
    return normalised


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_the_simulator_answers_as_livekit_server_does(
    scenario: str, real_livekit: RunningLiveKit, simulated_livekit: RunningLiveKit
) -> None:
    name = f"fidelity-{scenario}-{uuid.uuid4().hex[:8]}"  # the same name on both: answers compare verbatim
    real, simulated = await asyncio.gather(
        run(real_livekit, SCENARIOS[scenario], name), run(simulated_livekit, SCENARIOS[scenario], name)
    )
    found = differences(real, simulated)
    assert unexplained(found) == {}, f"undocumented differences (real, simulator); allowance: {sorted(ALLOWANCE)}"
