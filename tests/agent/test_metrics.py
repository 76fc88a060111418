"""The worker serves its metrics on METRICS_PORT: registered with LiveKit (the simulator) while it runs, 0 after."""

from __future__ import annotations

import os
import socket
import uuid

import httpx
import pytest
from prometheus_client import REGISTRY

from devstack.livekit_sim import run_simulator
from services.agent.worker import running_worker
from tests.agent.worker_settings import simulator_agent_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_worker_says_it_is_registered_on_its_metrics_port(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):  # AgentServer.run() exports these
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])
        else:
            monkeypatch.delenv(key, raising=False)
    port = _free_port()
    async with run_simulator() as sim:
        settings = simulator_agent_settings(
            sim.ws_url, redis_url, f"agent-{uuid.uuid4().hex[:8]}", metrics_port=port, metrics_host="127.0.0.1"
        )
        async with running_worker(settings), httpx.AsyncClient(timeout=5) as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            assert "agentready_agent_worker_registered 1.0" in text
            assert "agentready_agent_active_jobs 0.0" in text
            assert "lk_agents_" in text  # livekit-agents' own metrics come along
        assert REGISTRY.get_sample_value("agentready_agent_worker_registered") == 0.0
        async with httpx.AsyncClient(timeout=2) as http:
            with pytest.raises(httpx.TransportError):
                await http.get(f"http://127.0.0.1:{port}/metrics")  # the port is closed with the worker
