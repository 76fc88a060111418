"""Settings of a real agent worker for tests against the LiveKit simulator's room bus."""

from __future__ import annotations

from typing import Any

from services.agent.settings import AgentSettings


def simulator_agent_settings(ws_url: str, redis_url: str, agent_name: str, **overrides: Any) -> AgentSettings:
    """Thread executor, job-count load (never refused for CPU load), no API (greeting from the dispatch metadata)."""
    values: dict[str, Any] = {
        "livekit_url": ws_url,
        "livekit_api_key": "devkey",
        "livekit_api_secret": "secret",
        "livekit_agent_name": agent_name,
        "dev_mode": True,
        "redis_url": redis_url,
        "agent_room_backend": "simulator",
        "agent_job_executor": "thread",
        "agent_num_idle_processes": 1,
        "agent_load_threshold": float("inf"),  # the test machine's CPU load must not refuse jobs
        # load = jobs / 20, not the CPU's: the server (and the simulator) offer no job at load >= 0.7
        "agent_max_jobs": 20,
        "agent_http_port": 0,
        "api_internal_url": "",  # no API here: skip flow init, greet from the dispatch metadata
        **overrides,
    }
    return AgentSettings(**values)
