"""Turning dispatches into jobs on workers, as ``AgentHandler.JobRequest`` and ``Worker.AssignJob`` do.

A job goes to one available worker registered under the dispatch's agent name, and only while one of those
workers is below the target load (0.7: the node's ``JobRequestAffinity``). With no such worker the job is dropped
silently (the dispatch stays listed); a worker that answers "not available" or closes is skipped for the next one;
the whole request expires after 3 s (psrpc's client timeout), so an unanswered offer drops the job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog
from livekit.protocol import agent, agent_dispatch

from .auth import mint_agent_token
from .state import Room, SimState, Worker, WorkerClosedError, new_id

log = structlog.get_logger("livekit_sim.jobs")

# AssignJob waits 10 s for an answer, but the JobRequest RPC around it times out after psrpc's DefaultClientTimeout.
ASSIGN_JOB_TIMEOUT = 3.0
AGENT_LEAVE_WAIT_S = 3.0  # DeleteDispatch: how long a terminated agent may stay before the server removes it

Remover = Callable[[str, str, str], Awaitable[bool]]


class JobLauncher:
    """Launches jobs in the background and keeps track of the tasks so they can be cancelled."""

    def __init__(
        self,
        state: SimState,
        keys: dict[str, str],
        assign_timeout: float = ASSIGN_JOB_TIMEOUT,
        *,
        job_delay_s: float = 0.0,
    ) -> None:
        self._state = state
        self._keys = keys
        self._assign_timeout = assign_timeout
        self._job_delay_s = job_delay_s  # simulated agent start-up time before the job reaches a worker
        self._tasks: set[asyncio.Task[None]] = set()
        self._by_dispatch: dict[str, set[asyncio.Task[None]]] = {}
        self.remove_participant: Remover | None = None  # the room bus's disconnect, wired by the app

    def launch(self, target: Room, dispatch: agent_dispatch.AgentDispatch) -> None:
        """Start a room job for ``dispatch`` (fire and forget, like the server's goroutine)."""
        job = agent.Job(
            id=new_id("AJ_"),
            dispatch_id=dispatch.id,
            type=agent.JT_ROOM,
            room=target.to_proto(),
            agent_name=dispatch.agent_name,
            metadata=dispatch.metadata,
            deployment=dispatch.deployment,
            attributes=dispatch.attributes,
        )
        task = asyncio.get_running_loop().create_task(self._assign(job, dispatch))
        self._tasks.add(task)
        pending = self._by_dispatch.setdefault(dispatch.id, set())
        pending.add(task)

        def forget(done: asyncio.Task[None]) -> None:
            self._tasks.discard(done)
            pending.discard(done)
            if not pending:
                self._by_dispatch.pop(dispatch.id, None)

        task.add_done_callback(forget)

    async def wait_idle(self) -> None:
        """Wait until every launch in flight has finished (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel launches in flight."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _drop(self, job: agent.Job, reason: str) -> None:
        self._state.counters["jobs_dropped"] += 1
        self._state.counters[f"jobs_dropped.{reason}"] += 1
        log.info("job dropped", job_id=job.id, agent_name=job.agent_name, room=job.room.name, reason=reason)

    async def _assign(self, job: agent.Job, dispatch: agent_dispatch.AgentDispatch) -> None:
        if self._job_delay_s > 0:
            await asyncio.sleep(self._job_delay_s)
        if not self._state.has_worker_for(job):
            self._drop(job, "no_worker")
            return
        if not self._state.accepts_jobs(job):
            self._drop(job, "no_capacity")
            return
        deadline = asyncio.get_running_loop().time() + self._assign_timeout
        attempted: set[str] = set()
        while True:
            worker = self._state.select_worker(job, attempted)
            if worker is None:
                self._drop(job, "no_capacity")
                return
            attempted.add(worker.id)
            try:
                done = await self._offer(worker, job, dispatch, deadline)
            except WorkerClosedError:
                continue
            if done:
                return

    async def _offer(
        self, worker: Worker, job: agent.Job, dispatch: agent_dispatch.AgentDispatch, deadline: float
    ) -> bool:
        """Offer ``job`` to one worker; True when the job is settled (assigned, terminated or dropped)."""
        now = time.time_ns()
        offered = agent.Job()
        offered.CopyFrom(job)
        offered.state.CopyFrom(
            agent.JobState(worker_id=worker.id, updated_at=now, started_at=now, status=agent.JS_RUNNING)
        )
        wait = max(0.0, deadline - asyncio.get_running_loop().time())
        response = await worker.channel.request_availability(offered, wait)
        if response is None:
            self._drop(job, "availability_timeout")
            return True
        if response.terminate:
            self._state.counters["jobs_terminated_on_offer"] += 1
            return True
        if not response.available:
            self._state.counters["jobs_rejected"] += 1
            return False
        offered.state.participant_identity = response.participant_identity
        token = mint_agent_token(
            worker.api_key,
            self._keys[worker.api_key],
            job.room.name,
            response,
            worker.permissions,
            worker.agent_name,
        )
        await worker.channel.send(agent.ServerMessage(assignment=agent.JobAssignment(job=offered, token=token)))
        worker.jobs[job.id] = offered
        # The dispatch keeps a snapshot of the job as assigned, as the open-source server does.
        dispatch.state.jobs.add().CopyFrom(offered)
        self._state.job_assigned(offered)
        log.info("job assigned", job_id=job.id, worker_id=worker.id, room=job.room.name, agent_name=job.agent_name)
        return True

    async def end_dispatch(self, dispatch: agent_dispatch.AgentDispatch) -> None:
        """After ``DeleteDispatch``: once its offers in flight settle, terminate its jobs and remove agents that
        stay in the room longer than 3 s."""
        pending = list(self._by_dispatch.get(dispatch.id, ()))
        await asyncio.gather(*pending, return_exceptions=True)
        jobs = {job.id: job.state.participant_identity for job in dispatch.state.jobs}
        await self.terminate_jobs(lambda job: job.id in jobs)
        for identity in filter(None, jobs.values()):
            await self._remove_when_stale(dispatch.room, identity)

    async def _remove_when_stale(self, room_name: str, identity: str) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + AGENT_LEAVE_WAIT_S
        while loop.time() < end:
            target = self._state.rooms.get(room_name)
            if target is None or identity not in target.participants:
                return
            await asyncio.sleep(0.05)  # polling the room, bounded by AGENT_LEAVE_WAIT_S
        if self.remove_participant is not None:
            await self.remove_participant(room_name, identity, "removed")

    async def agent_left(self, room_name: str, identity: str) -> int:
        """An agent left its room: its job ends (``JobTerminateReason_AGENT_LEFT_ROOM``)."""
        ended = await self.terminate_jobs(
            lambda job: job.room.name == room_name and job.state.participant_identity == identity
        )
        self._state.counters["jobs_ended_agent_left"] += ended
        return ended

    async def terminate_room_jobs(self, room_name: str) -> None:
        """Tell workers to end their jobs in a room that closed (its agents would be disconnected)."""
        await self.terminate_jobs(lambda job: job.room.name == room_name)

    async def terminate_jobs(self, which: Callable[[agent.Job], bool]) -> int:
        """Send ``JobTermination`` for every running job ``which`` selects; how many were sent."""
        sent = 0
        for worker in list(self._state.workers.values()):
            for job_id, job in list(worker.jobs.items()):
                if not which(job):
                    continue
                worker.jobs.pop(job_id, None)
                self._state.job_ended(job)
                try:
                    await worker.channel.send(agent.ServerMessage(termination=agent.JobTermination(job_id=job_id)))
                except WorkerClosedError:
                    continue
                sent += 1
        return sent
