"""The system under test, as in production: each service its own process, real Redis and PostgreSQL.

devstack.stack's ``bench`` profile (the LiveKit simulator with the agent start-up delay, one log file per
process, not through this process's CPU) plus the two comparison handlers (ceiling, polling).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
from redis.asyncio import Redis

from contracts.streams import SESSION_REQUESTED, SUBSCRIPTIONS
from devstack.profiles import BENCH, BENCH_AGENT_NAME
from devstack.readiness import wait_for_sim_worker, wait_for_tcp
from devstack.server_process import free_tcp_port
from devstack.servers import ServerHandle
from devstack.stack import StackHandle, found_servers, start_stack

AGENT_NAME = BENCH_AGENT_NAME
POLLING_AGENT_NAME = "agentready-bench-polling"  # the old design's agent: no flow init through this API


@dataclass(frozen=True)
class StackOptions:
    """How to start the stack."""

    agent_delay_ms: int
    log_dir: Path
    log_level: str = "INFO"
    empty_timeout_s: int = 20  # rooms no user joined close after this, ending their agent jobs


@dataclass
class Stack:
    """Where everything answers, and the pids whose memory and CPU are measured."""

    api_url: str
    ceiling_url: str
    polling_url: str
    livekit_url: str
    database_url: str
    redis_url: str
    api_key: str = ""
    flow_id: str = ""
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def auth(self) -> dict[str, str]:
        """The API's Authorization header."""
        return {"Authorization": f"Bearer {self.api_key}"}


@asynccontextmanager
async def running_stack(options: StackOptions) -> AsyncIterator[Stack]:
    """Start servers, simulator, services and comparison handlers; create an API key and a flow; stop all."""
    simulator = replace(BENCH.simulator, job_delay_ms=options.agent_delay_ms, empty_timeout_s=options.empty_timeout_s)
    profile = replace(BENCH, simulator=simulator, log_level=options.log_level)
    async with AsyncExitStack() as exits:
        redis, postgres = exits.enter_context(found_servers())
        services = await start_stack(profile, redis_url=redis.url, database_url=postgres.url, log_path=options.log_dir)
        await exits.enter_async_context(services)
        ceiling_port, polling_port = free_tcp_port(), free_tcp_port()
        stack = Stack(
            services.api_url,
            f"http://127.0.0.1:{ceiling_port}",
            f"http://127.0.0.1:{polling_port}",
            services.livekit_url,
            postgres.url,
            redis.url,
            services.api_key,
        )
        polling_env = {**services.env, "LIVEKIT_AGENT_NAME": POLLING_AGENT_NAME, "API_INTERNAL_URL": ""}
        await services.start_child("agent_polling", [sys.executable, "-m", "services.agent"], polling_env)
        for kind, port in (("ceiling", ceiling_port), ("polling", polling_port)):
            argv = [sys.executable, "-m", "bench.serve", kind, "--port", str(port)]
            await services.start_child(kind, argv, polling_env if kind == "polling" else None)
        await wait_for_tcp("127.0.0.1", ceiling_port, deadline_s=30)
        await wait_for_tcp("127.0.0.1", polling_port, deadline_s=30)
        await wait_for_sim_worker(stack.livekit_url, deadline_s=60, names={AGENT_NAME, POLLING_AGENT_NAME})
        stack.pids = measured_pids(redis, postgres, services)
        stack.flow_id = await create_flow(stack)
        yield stack


def measured_pids(redis: ServerHandle, postgres: ServerHandle, services: StackHandle) -> dict[str, int]:
    """The pids measured, by name: the servers the stack found, and every process the stack started."""
    servers = {"redis": redis.pid, "postgres": postgres.pid}
    pids = {name: pid for name, pid in servers.items() if pid is not None}
    return pids | {label.replace("-", "_"): pid for label, pid in services.pids.items()}  # livekit_server, ...


PIPELINE = ("dispatcher", "session_store", "agent")  # everything downstream of the API's XADD


@asynccontextmanager
async def pipeline_paused(stack: Stack) -> AsyncIterator[None]:
    """Stop the pipeline's processes (SIGSTOP) for the block, then skip what the API published meanwhile.

    The API phases then run on the same free cores as the ceiling (whose stream nobody reads): what is
    compared is the API process, not how the two cores are shared with the consumers of its output. The
    pipeline itself is measured in the end-to-end and burst phases. On exit every group reading
    ``session.requested`` moves past the requests published during the block, and the processes resume.
    """
    pids = [stack.pids[name] for name in PIPELINE]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        redis = Redis.from_url(stack.redis_url)
        try:
            for group, streams in SUBSCRIPTIONS.items():
                if SESSION_REQUESTED in streams:
                    await redis.xgroup_setid(SESSION_REQUESTED, group, "$")
        finally:
            await redis.aclose()
            for pid in pids:
                os.kill(pid, signal.SIGCONT)


async def create_flow(stack: Stack) -> str:
    """Create the flow every benchmark session is requested for; return its id.

    Its readiness deadline is the longest allowed (600 s): a burst served at the pipeline's pace takes minutes.
    """
    async with httpx.AsyncClient(base_url=stack.api_url, headers=stack.auth, timeout=10) as client:
        flow = {"name": "bench", "greeting": "Hello.", "agentSettings": {"readyTimeoutS": 600}}
        response = await client.post("/api/flows", json=flow)
        response.raise_for_status()
        return str(response.json()["id"])
