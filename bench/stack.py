"""The system under test, as in production: each service its own process, real Redis and PostgreSQL.

Also started: the LiveKit simulator (with the agent start-up delay) and the two comparison handlers
(ceiling, polling). Output goes to one log file per process, not through this process's CPU.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from redis.asyncio import Redis

from contracts.streams import SESSION_REQUESTED, SUBSCRIPTIONS
from devstack.readiness import wait_for_http_ok, wait_for_tcp
from devstack.server_process import die_with_parent_hook
from devstack.servers import ServerHandle, postgres_server, redis_server
from services.api import admin

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("session_store", "dispatcher", "agent", "api")
AGENT_NAME = "agentready-bench"
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


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stack_env(
    redis: ServerHandle, postgres: ServerHandle, livekit_url: str, api_port: int, level: str
) -> dict[str, str]:
    """The services' environment: dev credentials, no admission cap in the way of a burst, a fleet-like agent."""
    return {
        **os.environ,
        "REDIS_URL": redis.url,
        "DATABASE_URL": postgres.url,
        "LIVEKIT_URL": livekit_url,
        "LIVEKIT_API_KEY": "devkey",
        "LIVEKIT_API_SECRET": "secret",
        "LIVEKIT_AGENT_NAME": AGENT_NAME,
        "DEV_MODE": "true",
        "AGENT_ROOM_BACKEND": "simulator",
        "AGENT_JOB_EXECUTOR": "thread",
        "AGENT_WAIT_FOR_USER": "false",
        # The worker takes at most 80 jobs at once and refuses more (the simulator, like LiveKit, drops a refused
        # job); the dispatcher keeps at most 50 sessions waiting for their agent, so a backlog waits in the stream
        # instead of piling onto one worker (unpaced, it stopped taking jobs: 4 of 3,000 ready) or turning into
        # refused jobs and re-dispatches.
        "AGENT_LOAD_THRESHOLD": "0.99",
        "AGENT_MAX_JOBS": "80",
        "AGENT_NUM_IDLE_PROCESSES": "16",
        "DISPATCH_JOIN_TIMEOUT_S": "10",
        "DISPATCH_MAX_ATTEMPTS": "5",
        "DISPATCH_MAX_WAITING": "50",
        "AGENT_SPEAK_MS_PER_CHAR": "0",  # the agent's whole start-up time is the simulator's job delay
        # The benchmark's frontends never join their rooms: each job ends soon after ready instead of holding
        # its executor 30 s for a user who never comes (a production fleet holds jobs on many machines).
        "AGENT_USER_WAIT_SECONDS": "0.5",
        "AGENT_HTTP_PORT": "0",
        "MAX_OPEN_SESSIONS_PER_ORG": "1000000",
        "API_INTERNAL_URL": f"http://127.0.0.1:{api_port}",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(api_port),
        "LOG_LEVEL": level,
        "LOG_JSON": "true",
        "PYTHONUNBUFFERED": "1",
    }


class _Children:
    """Child processes in their own process groups, output to files; all stopped on exit."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._procs: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, label: str, argv: list[str], env: dict[str, str]) -> int:
        log = (self._log_dir / f"{label}.log").open("wb")
        proc = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent_hook(signal.SIGTERM),
        )
        self._procs.append((proc, log))
        return proc.pid

    def stop(self) -> None:
        for proc, _ in reversed(self._procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, log in reversed(self._procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            log.close()


@asynccontextmanager
async def running_stack(options: StackOptions) -> AsyncIterator[Stack]:
    """Start servers, simulator, services and comparison handlers; create an API key and a flow; stop all."""
    options.log_dir.mkdir(parents=True, exist_ok=True)
    children = _Children(options.log_dir)
    async with AsyncExitStack() as exits:
        redis = exits.enter_context(redis_server())
        postgres = exits.enter_context(postgres_server())
        exits.callback(children.stop)
        sim_port, api_port, ceiling_port, polling_port = free_port(), free_port(), free_port(), free_port()
        livekit_url = f"http://127.0.0.1:{sim_port}"
        env = stack_env(redis, postgres, livekit_url, api_port, options.log_level)
        stack = Stack(
            f"http://127.0.0.1:{api_port}",
            f"http://127.0.0.1:{ceiling_port}",
            f"http://127.0.0.1:{polling_port}",
            livekit_url,
            postgres.url,
            redis.url,
        )
        for name, handle in (("redis", redis), ("postgres", postgres)):
            if handle.pid is not None:
                stack.pids[name] = handle.pid
        sim_argv = [sys.executable, "-m", "devstack.livekit_sim", "--port", str(sim_port)]
        sim_argv += ["--job-delay-ms", str(options.agent_delay_ms), "--fixed-worker-load", "0"]
        sim_argv += ["--empty-timeout", str(options.empty_timeout_s), "--log-level", "WARNING"]
        stack.pids["livekit_sim"] = children.start("livekit_sim", sim_argv, env)
        await wait_for_tcp("127.0.0.1", sim_port, deadline_s=30)
        for service in SERVICES:
            stack.pids[service] = children.start(service, [sys.executable, "-m", f"services.{service}"], env)
        polling_env = {**env, "LIVEKIT_AGENT_NAME": POLLING_AGENT_NAME, "API_INTERNAL_URL": ""}
        stack.pids["agent_polling"] = children.start(
            "agent_polling", [sys.executable, "-m", "services.agent"], polling_env
        )
        for kind, port in (("ceiling", ceiling_port), ("polling", polling_port)):
            argv = [sys.executable, "-m", "bench.serve", kind, "--port", str(port)]
            stack.pids[kind] = children.start(kind, argv, polling_env if kind == "polling" else env)
        await wait_for_http_ok(f"{stack.api_url}/healthz", deadline_s=60)
        await wait_for_tcp("127.0.0.1", ceiling_port, deadline_s=30)
        await wait_for_tcp("127.0.0.1", polling_port, deadline_s=30)
        await wait_for_workers(livekit_url, {AGENT_NAME, POLLING_AGENT_NAME}, deadline_s=60)
        stack.api_key, _ = await admin.create_key(postgres.url, "bench")
        stack.flow_id = await create_flow(stack)
        yield stack


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


async def wait_for_workers(livekit_url: str, names: set[str], *, deadline_s: float) -> None:
    """Wait until a worker is registered with the simulator under each of ``names``."""
    async with httpx.AsyncClient(timeout=5) as client, asyncio.timeout(deadline_s):
        while True:
            workers = (await client.get(f"{livekit_url}/sim/state")).json()["workers"]
            if names <= {w["agent_name"] for w in workers}:
                return
            await asyncio.sleep(0.2)


async def create_flow(stack: Stack) -> str:
    """Create the flow every benchmark session is requested for; return its id.

    Its readiness deadline is the longest allowed (600 s): a burst served at the pipeline's pace takes minutes.
    """
    async with httpx.AsyncClient(base_url=stack.api_url, headers=stack.auth, timeout=10) as client:
        flow = {"name": "bench", "greeting": "Hello.", "agentSettings": {"readyTimeoutS": 600}}
        response = await client.post("/api/flows", json=flow)
        response.raise_for_status()
        return str(response.json()["id"])
