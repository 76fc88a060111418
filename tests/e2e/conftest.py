"""The whole system as separate processes: LiveKit simulator + the services, on real Redis/PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from devstack.processes import ChildSpec, ProcessGroup
from devstack.readiness import wait_for_http_ok, wait_for_sim_worker, wait_for_tcp

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("session_store", "dispatcher", "agent", "api")
SERVICES_WITHOUT_AGENT = ("session_store", "dispatcher", "api")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    """Where the running stack answers, its API key, and every line its processes printed (for failure messages)."""

    api_url: str
    livekit_url: str
    env: dict[str, str]
    group: ProcessGroup
    output: list[str] = field(default_factory=list)
    api_key: str = ""

    def tail(self, lines: int = 60) -> str:
        """The last lines the processes printed."""
        return "\n".join(self.output[-lines:])

    def client(self, timeout: float = 10) -> httpx.AsyncClient:
        """An HTTP client of the API that sends the stack's API key."""
        headers = {"Authorization": f"Bearer {self.api_key}"}
        return httpx.AsyncClient(base_url=self.api_url, headers=headers, timeout=timeout)


async def create_api_key(env: dict[str, str], org: str, deadline_s: float = 60) -> str:
    """Run ``python -m services.api create-key`` and return the key it prints."""
    argv = [sys.executable, "-m", "services.api", "create-key", "--org", org]
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=deadline_s)
    if proc.returncode != 0:
        raise RuntimeError(f"create-key failed ({proc.returncode}): {err.decode()}")
    return out.decode().strip()


def with_redis_db(url: str, db: int) -> str:
    """``url`` pointing at another logical database of the same Redis server (streams are per database)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


@asynccontextmanager
async def separate_database(database_url: str) -> AsyncIterator[str]:
    """A fresh database on the same PostgreSQL server, dropped afterwards."""
    import psycopg

    name = f"agentready_e2e_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    finally:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def running_stack(
    redis_url: str, database_url: str, services: Sequence[str], extra_env: dict[str, str] | None = None
) -> AsyncIterator[Stack]:
    """Start the simulator and ``services`` as child processes (waiting for the agent's worker when it runs)."""
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
        "API_INTERNAL_URL": f"http://127.0.0.1:{api_port}",
        "AGENT_LOAD_THRESHOLD": "inf",  # CPU load of a busy test machine must not make the worker refuse jobs
        "AGENT_HTTP_PORT": "0",
        "LOG_JSON": "true",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    output: list[str] = []
    group = ProcessGroup(lambda label, line: output.append(f"{label} | {line}"), stop_timeout_s=10)
    stack = Stack(f"http://127.0.0.1:{api_port}", livekit_url, env, group, output)
    try:
        sim_argv = [sys.executable, "-m", "devstack.livekit_sim", "--host", "127.0.0.1", "--port", str(sim_port)]
        await group.start(ChildSpec("livekit-sim", sim_argv, env=env, cwd=REPO_ROOT))
        stack.api_key = await create_api_key(env, f"e2e-{uuid.uuid4().hex[:8]}")
        await wait_for_tcp("127.0.0.1", sim_port, deadline_s=30)
        for service in services:
            await group.start(ChildSpec(service, [sys.executable, "-m", f"services.{service}"], env=env, cwd=REPO_ROOT))
        await wait_for_http_ok(f"{stack.api_url}/healthz", deadline_s=60)
        if "agent" in services:
            await wait_for_sim_worker(livekit_url, deadline_s=60)
        yield stack
    except Exception as exc:
        raise RuntimeError(f"the stack did not start or failed: {exc}\n{stack.tail()}") from exc
    finally:
        await group.stop()


@pytest.fixture(scope="session")
async def stack(redis_url: str, database_url: str) -> AsyncIterator[Stack]:
    """The simulator and the four services, for the whole run."""
    async with running_stack(redis_url, database_url, SERVICES) as stack:
        yield stack


@pytest.fixture(scope="module")
async def stack_without_agent(redis_url: str, database_url: str) -> AsyncIterator[Stack]:
    """Simulator, api, session store and dispatcher but no agent: jobs are dropped, sessions must expire.

    Its own Redis and PostgreSQL databases: the session-wide stack's dispatcher and agent never see its
    requests, and that stack's session store never expires its sessions (announcing it on the other Redis).
    """
    async with (
        separate_database(database_url) as own_database,
        running_stack(with_redis_db(redis_url, 1), own_database, SERVICES_WITHOUT_AGENT) as stack,
    ):
        yield stack
