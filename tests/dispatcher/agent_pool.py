"""A saturable agent pool on the simulator's ``/agent`` WebSocket: one worker that runs at most ``capacity`` jobs at
once and refuses offers beyond (as livekit-agents does at its load threshold; the simulator then drops the job, as
LiveKit does). Each job it takes says ``agent.joined`` after ``start_s`` and holds its place ``hold_s`` longer (the
agent getting ready and serving), so a burst larger than the pool keeps it full for a while. Optionally it loses
every n-th job it took without a word, as livekit-agents did once in a benchmark burst."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import aiohttp
from livekit import api
from livekit.protocol import agent

from contracts.events import AgentJoined, Event, SessionStatusChanged
from contracts.job import AgentJobMetadata

OFFER_RESERVED_S = 5.0  # a place promised to an offer that is never assigned comes back after this
REGISTER_DEADLINE_S = 5.0


@dataclass
class AgentPool:
    """What the pool did: jobs assigned per room, sessions joined, jobs the server terminated."""

    capacity: int
    start_s: float
    hold_s: float
    publish: Callable[[Event], Awaitable[None]]
    slow_every: int = 0  # every n-th job starts in ``slow_start_s`` instead (a new job process on a busy machine)
    slow_start_s: float = 0.0
    # every n-th job is accepted, assigned and then never run nor reported (as livekit-agents does when no job
    # process becomes available: "no process became available after 3 attempts"); the server keeps it as running.
    # A room loses one job at most.
    lose_every: int = 0
    assigned: Counter[str] = field(default_factory=Counter)
    lost: set[str] = field(default_factory=set)  # rooms whose job was lost that way
    joined: set[str] = field(default_factory=set)
    terminated: int = 0
    _busy: set[str] = field(default_factory=set)  # job ids reserved by an answered offer or running
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _ws: aiohttp.ClientWebSocketResponse | None = None

    async def _send(self, message: agent.WorkerMessage) -> None:
        assert self._ws is not None
        with suppress(ConnectionError, RuntimeError):
            await self._ws.send_bytes(message.SerializeToString())

    async def serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Answer the server's messages until the socket closes."""
        self._ws = ws
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.BINARY:
                continue
            message = agent.ServerMessage.FromString(frame.data)
            kind = message.WhichOneof("message")
            if kind == "availability":
                await self._offered(message.availability.job)
            elif kind == "assignment":
                self._assigned(message.assignment.job)
            elif kind == "termination":
                self._ended(message.termination.job_id, terminated=True)

    async def _offered(self, job: agent.Job) -> None:
        available = len(self._busy) < self.capacity
        if available:
            self._busy.add(job.id)
            asyncio.get_running_loop().call_later(OFFER_RESERVED_S, self._release_unassigned, job.id)
        identity = f"agent-{job.id}"
        response = agent.AvailabilityResponse(job_id=job.id, available=available, participant_identity=identity)
        await self._send(agent.WorkerMessage(availability=response))

    def _release_unassigned(self, job_id: str) -> None:
        if job_id not in self._tasks:
            self._busy.discard(job_id)

    def _assigned(self, job: agent.Job) -> None:
        self.assigned[job.room.name] += 1
        count = sum(self.assigned.values())
        if self.lose_every > 0 and count % self.lose_every == 0 and job.room.name not in self.lost:
            self.lost.add(job.room.name)
            self._busy.discard(job.id)  # its place is free again, as the worker's reserved slot is
            return
        self._busy.add(job.id)
        self._tasks[job.id] = asyncio.get_running_loop().create_task(self._run(job))

    async def _run(self, job: agent.Job) -> None:
        meta = AgentJobMetadata.model_validate_json(job.metadata)
        slow = self.slow_every > 0 and sum(self.assigned.values()) % self.slow_every == 0
        await asyncio.sleep(self.slow_start_s if slow else self.start_s)
        joined = AgentJoined(
            session_id=meta.session_id, correlation_id=meta.correlation_id, room_name=job.room.name, job_id=job.id
        )
        await self.publish(joined)
        # No session store runs here: announce the move it would make, which is what disarms the watchdog.
        await self.publish(
            SessionStatusChanged(session_id=meta.session_id, from_status="dispatched", to_status="agent_joined")
        )
        self.joined.add(meta.session_id)
        await asyncio.sleep(self.hold_s)
        await self._send(agent.WorkerMessage(update_job=agent.UpdateJobStatus(job_id=job.id, status=agent.JS_SUCCESS)))
        self._ended(job.id, terminated=False)

    def _ended(self, job_id: str, *, terminated: bool) -> None:
        self._busy.discard(job_id)
        task = self._tasks.pop(job_id, None)
        if terminated and task is not None:
            self.terminated += 1
            task.cancel()

    async def aclose(self) -> None:
        """Cancel the jobs still running."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)


@asynccontextmanager
async def agent_pool(ws_url: str, agent_name: str, pool: AgentPool) -> AsyncIterator[AgentPool]:
    """Register ``pool`` as a worker for ``agent_name`` (load 0: the server offers it every job; it refuses when
    full); unregister on exit."""
    token = api.AccessToken("devkey", "secret").with_grants(api.VideoGrants(agent=True)).to_jwt()
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{ws_url}/agent", headers={"Authorization": f"Bearer {token}"}) as ws,
    ):
        register = agent.RegisterWorkerRequest(type=agent.JT_ROOM, agent_name=agent_name, version="1")
        await ws.send_bytes(agent.WorkerMessage(register=register).SerializeToString())
        async with asyncio.timeout(REGISTER_DEADLINE_S):
            reply = agent.ServerMessage.FromString(await ws.receive_bytes())
        assert reply.WhichOneof("message") == "register", reply
        status = agent.UpdateWorkerStatus(status=agent.WS_AVAILABLE, load=0.0)
        await ws.send_bytes(agent.WorkerMessage(update_worker=status).SerializeToString())
        serving = asyncio.get_running_loop().create_task(pool.serve(ws))
        try:
            yield pool
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
            await pool.aclose()
