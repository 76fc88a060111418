"""The whole system as processes (devstack.stack's ``fault`` profile) on restartable Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import psycopg

from bench.profiling import py_spy
from devstack import stack as launcher
from devstack.profiles import FAULT, FAULT_CLAIM_IDLE_S, FAULT_MAX_DELIVERIES
from devstack.stack import StackHandle
from tests.delivery.servers import RestartablePostgres, RestartableRedis

CLAIM_IDLE_S = FAULT_CLAIM_IDLE_S
MAX_DELIVERIES = FAULT_MAX_DELIVERIES


@dataclass
class FaultStack:
    """The running stack plus its servers, so a test can kill, stop and restart every part."""

    stack: StackHandle
    redis: RestartableRedis
    postgres: RestartablePostgres

    def __getattr__(self, name: str) -> object:
        """Everything else is the stack's: api_url, livekit_url, env, pids, output, headers, tail, kill, ..."""
        return getattr(self.stack, name)


async def start_stack(data_dir: Path) -> FaultStack:
    """Start the servers, then the stack (two replicas of each consumer); wait until it is ready."""
    redis, postgres = RestartableRedis(data_dir / "redis"), RestartablePostgres(data_dir / "postgres")
    redis.start()  # from the main thread: that arms the die-with-parent hook (no orphan server)
    postgres.start()
    profile = replace(FAULT, memory_lines=int(os.environ.get("FAULT_LOG_LINES", "400")))
    stack = await launcher.start_stack(profile, redis_url=redis.url, database_url=postgres.url)
    return FaultStack(stack, redis, postgres)


async def stop_stack(stack: FaultStack) -> None:
    """Stop every process, then the servers."""
    await stack.stack.stop()
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
