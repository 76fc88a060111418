"""The whole system as separate processes: LiveKit simulator + the four services, on real Redis/PostgreSQL."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devstack.processes import ChildSpec, ProcessGroup
from devstack.readiness import wait_for_http_ok, wait_for_sim_worker, wait_for_tcp

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("session_store", "dispatcher", "agent", "api")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    """Where the running stack answers, and every line its processes printed (for failure messages)."""

    api_url: str
    livekit_url: str
    env: dict[str, str]
    group: ProcessGroup
    output: list[str] = field(default_factory=list)

    def tail(self, lines: int = 60) -> str:
        """The last lines the processes printed."""
        return "\n".join(self.output[-lines:])


@pytest.fixture(scope="session")
async def stack(redis_url: str, database_url: str) -> AsyncIterator[Stack]:
    """Start the simulator and the four services as child processes; stop them all afterwards."""
    sim_port, api_port = free_port(), free_port()
    livekit_url = f"http://127.0.0.1:{sim_port}"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "LIVEKIT_URL": livekit_url,
        "LIVEKIT_API_KEY": "devkey",
        "LIVEKIT_API_SECRET": "secret",
        "LIVEKIT_AGENT_NAME": f"agentready-e2e-{sim_port}",
        "DEV_MODE": "true",
        "AGENT_ROOM_BACKEND": "simulator",
        "AGENT_JOB_EXECUTOR": "thread",
        "AGENT_WAIT_FOR_USER": "false",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(api_port),
        "LOG_JSON": "true",
        "PYTHONUNBUFFERED": "1",
    }
    output: list[str] = []
    group = ProcessGroup(lambda label, line: output.append(f"{label} | {line}"), stop_timeout_s=10)
    stack = Stack(f"http://127.0.0.1:{api_port}", livekit_url, env, group, output)
    try:
        sim_argv = [sys.executable, "-m", "devstack.livekit_sim", "--host", "127.0.0.1", "--port", str(sim_port)]
        await group.start(ChildSpec("livekit-sim", sim_argv, env=env, cwd=REPO_ROOT))
        await wait_for_tcp("127.0.0.1", sim_port, deadline_s=30)
        for service in SERVICES:
            await group.start(ChildSpec(service, [sys.executable, "-m", f"services.{service}"], env=env, cwd=REPO_ROOT))
        await wait_for_http_ok(f"{stack.api_url}/healthz", deadline_s=60)
        await wait_for_sim_worker(livekit_url, deadline_s=60)
        yield stack
    except Exception as exc:
        raise RuntimeError(f"the stack did not start: {exc}\n{stack.tail()}") from exc
    finally:
        await group.stop()
