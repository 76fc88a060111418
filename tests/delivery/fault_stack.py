"""The whole system as processes on restartable Redis and PostgreSQL, two replicas of each consumer."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from bench.profiling import py_spy
from devstack.processes import ChildSpec, ProcessGroup
from devstack.readiness import wait_for_http_ok, wait_for_sim_worker, wait_for_tcp
from tests.delivery.servers import RestartablePostgres, RestartableRedis
from tests.e2e.conftest import REPO_ROOT, create_api_key, free_port

CONSUMERS = ("session_store", "dispatcher")
REPLICAS = 2
CLAIM_IDLE_S = 2.0
MAX_DELIVERIES = 5


@dataclass
class FaultStack:
    """Handles on every part, so a test can kill, stop and restart them."""

    redis: RestartableRedis
    postgres: RestartablePostgres
    api_url: str
    livekit_url: str
    env: dict[str, str]
    group: ProcessGroup
    api_key: str = ""
    pids: dict[str, int] = field(default_factory=dict)
    output: deque[str] = field(default_factory=lambda: deque(maxlen=400))

    @property
    def headers(self) -> dict[str, str]:
        """What every API request of the tests sends."""
        return {"Authorization": f"Bearer {self.api_key}"}

    def tail(self, lines: int = 80) -> str:
        """The last lines the processes printed."""
        return "\n".join(list(self.output)[-lines:])

    async def start_service(self, service: str, label: str) -> None:
        """Start one service process under ``label`` (its consumer name too)."""
        env = {**self.env, "CONSUMER_NAME": label}
        argv = [sys.executable, "-m", f"services.{service}"]
        self.pids[label] = await self.group.start(ChildSpec(label, argv, env=env, cwd=REPO_ROOT))

    def kill(self, label: str) -> None:
        """SIGKILL one process (and its process group): no shutdown code runs."""
        os.killpg(self.pids[label], signal.SIGKILL)


def stack_env(redis_url: str, database_url: str, livekit_url: str, api_port: int) -> dict[str, str]:
    """The services' environment: short claim idle time so takeovers happen within the test's bounds."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "LIVEKIT_URL": livekit_url,
        "LIVEKIT_API_KEY": "devkey",
        "LIVEKIT_API_SECRET": "secret",
        "LIVEKIT_AGENT_NAME": f"agentready-fault-{api_port}",
        "DEV_MODE": "true",
        "AGENT_ROOM_BACKEND": "simulator",
        "AGENT_JOB_EXECUTOR": "thread",
        "AGENT_WAIT_FOR_USER": "false",
        "AGENT_HTTP_PORT": "0",
        "AGENT_LOAD_THRESHOLD": "0.9",
        "AGENT_USER_WAIT_SECONDS": "0.5",  # nobody joins these rooms: free each job's executor soon after ready
        "AGENT_NUM_IDLE_PROCESSES": "16",
        # Capacity in jobs, so a burst is refused (and re-dispatched by the watchdog) instead of piling up
        # hundreds of jobs waiting for executors inside one worker.
        "AGENT_MAX_JOBS": "60",
        "DISPATCH_JOIN_TIMEOUT_S": "10",
        "DISPATCH_MAX_ATTEMPTS": "6",
        # Pacing: at most 25 sessions wait for their agent, so a backlog released by a fault reaches the worker
        # no faster than it frees jobs (unpaced, refused waves needed up to 6 join timeouts: ~60 s).
        "DISPATCH_MAX_WAITING": "25",
        "DISPATCH_MAX_PACING_WAIT_S": "10",  # below DELIVERY_HANDLER_TIMEOUT_S
        "API_HOST": "127.0.0.1",
        "API_PORT": str(api_port),
        "API_INTERNAL_URL": f"http://127.0.0.1:{api_port}",
        "READY_TIMEOUT_S": "120",  # a delay caused by the fault must not read as an expiry
        "MAX_OPEN_SESSIONS_PER_ORG": "1000000",  # "ready" sessions stay open: no admission cap in this test
        "DELIVERY_CLAIM_IDLE_S": str(CLAIM_IDLE_S),
        "DELIVERY_MAX_DELIVERIES": str(MAX_DELIVERIES),
        "DELIVERY_POLLING_MS": "200",
        "DELIVERY_HANDLER_TIMEOUT_S": "20",  # a handler hung by the fault is retried within the test's bound
        "LOG_LEVEL": "WARNING",
        "LOG_JSON": "true",
        "PYTHONUNBUFFERED": "1",
    }


async def start_stack(data_dir: Path) -> FaultStack:
    """Start the servers, the simulator and every service; wait until the API answers and the worker is in."""
    redis, postgres = RestartableRedis(data_dir / "redis"), RestartablePostgres(data_dir / "postgres")
    redis.start()  # from the main thread: that arms the die-with-parent hook (no orphan server)
    postgres.start()
    sim_port, api_port = free_port(), free_port()
    livekit_url = f"http://127.0.0.1:{sim_port}"
    output: deque[str] = deque(maxlen=int(os.environ.get("FAULT_LOG_LINES", "400")))
    group = ProcessGroup(lambda label, line: output.append(f"{label} | {line}"), stop_timeout_s=10)
    stack = FaultStack(
        redis, postgres, f"http://127.0.0.1:{api_port}", livekit_url,
        stack_env(redis.url, postgres.url, livekit_url, api_port), group, output=output,
    )  # fmt: skip
    sim_argv = [sys.executable, "-m", "devstack.livekit_sim", "--host", "127.0.0.1", "--port", str(sim_port)]
    stack.pids["livekit-sim"] = await group.start(ChildSpec("livekit-sim", sim_argv, env=stack.env, cwd=REPO_ROOT))
    await wait_for_tcp("127.0.0.1", sim_port, deadline_s=30)
    for service in CONSUMERS:
        for i in range(1, REPLICAS + 1):
            await stack.start_service(service, f"{service}-{i}")
    await stack.start_service("agent", "agent")
    await stack.start_service("api", "api")
    await wait_for_http_ok(f"{stack.api_url}/healthz", deadline_s=60)
    await wait_for_sim_worker(livekit_url, deadline_s=60)
    stack.api_key = await create_api_key(stack.env, f"fault-{api_port}")
    return stack


async def stop_stack(stack: FaultStack) -> None:
    """Stop every process, then the servers."""
    await stack.group.stop()
    stack.redis.stop()
    stack.postgres.stop()


@dataclass
class LoadResult:
    """Sessions the API accepted (202), how long it took, and how often a POST had to be retried."""

    accepted: list[str] = field(default_factory=list)
    rooms: dict[str, str] = field(default_factory=dict)
    retries: int = 0
    seconds: float = 0.0


async def post_sessions(
    stack: FaultStack, flow_id: str, count: int, into: LoadResult, *, concurrency: int = 4, rate_per_s: float = 0
) -> None:
    """POST ``count`` sessions into ``into`` (at ``rate_per_s`` when set); a POST that fails (server down, 5xx)
    is retried, as a client would."""
    accepted, rooms = into.accepted, into.rooms
    started = time.monotonic()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            index = queue.get_nowait()
            if rate_per_s:  # open-loop pacing: request i is due at i / rate after the start
                await asyncio.sleep(max(0.0, started + index / rate_per_s - time.monotonic()))
            deadline = time.monotonic() + 60
            while True:
                try:
                    response = await client.post(f"/api/flows/{flow_id}/sessions")
                    if response.status_code == 202:
                        body = response.json()
                        accepted.append(body["sessionId"])
                        rooms[body["sessionId"]] = body["roomName"]
                        break
                except httpx.HTTPError:
                    pass
                into.retries += 1
                if time.monotonic() > deadline:
                    raise AssertionError("the API accepted no session for 60 s")
                await asyncio.sleep(0.2)

    async with httpx.AsyncClient(base_url=stack.api_url, headers=stack.headers, timeout=10) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    into.seconds = time.monotonic() - started


async def create_flow(stack: FaultStack) -> str:
    """A flow to start sessions of; a 503 (the database just came back from the previous test's outage) is
    retried for up to 30 s, as a client told "retry shortly" would."""
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=stack.api_url, headers=stack.headers, timeout=10) as client:
        while True:
            response = await client.post("/api/flows", json={"name": "fault", "greeting": "Hello"})
            if response.status_code != 503 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


async def statuses(database_url: str, session_ids: list[str]) -> dict[str, str]:
    """Status of each session as the session store recorded it (missing: never recorded)."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT id, status FROM sessions WHERE id = ANY(%s)", (session_ids,))
        return {row[0]: row[1] for row in await cur.fetchall()}


async def jobs_per_room(livekit_url: str) -> dict[str, int]:
    """How many agent jobs the simulator started per room (more than one: a duplicate dispatch)."""
    async with httpx.AsyncClient(timeout=10) as client:
        state = (await client.get(f"{livekit_url}/sim/state")).json()
    return {name: int(room["jobs"]) for name, room in state["rooms"].items()}


async def thread_dump(pid: int) -> str:
    """Every thread's stack of ``pid`` (py-spy dump), to see where a stalled process waits; "" without py-spy."""
    exe = py_spy()
    if exe is None:
        return ""
    proc = await asyncio.create_subprocess_exec(
        exe, "dump", "--pid", str(pid), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    except TimeoutError:
        proc.kill()
        return "py-spy dump timed out"
    return out.decode(errors="replace")


async def sim_summary(livekit_url: str) -> str:
    """The simulator's job counters (assigned, dropped by reason, rejected) and each worker's status, load and
    running jobs: tells a job nobody took from a worker that stayed full."""
    async with httpx.AsyncClient(timeout=10) as client:
        state = (await client.get(f"{livekit_url}/sim/state")).json()
    counters = {k: v for k, v in sorted(state["counters"].items()) if k.startswith(("jobs", "workers"))}
    workers = [f"{w['status']} load={w['load']:.2f} jobs={len(w['jobs'])}" for w in state["workers"]]
    return f"{counters} workers={workers}"
