"""The ``/agent`` WebSocket: agent workers register, report load and job status, and receive jobs.

Binary frames carry ``WorkerMessage`` (worker -> server) and ``ServerMessage`` (server -> worker)
protobufs, as in livekit-server ``pkg/service/agentservice.go`` and ``pkg/agent/worker.go``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from aiohttp import WSMsgType, web
from livekit.protocol import agent, models

from .auth import TokenError, bearer_token, verify_token
from .state import SimState, Worker, WorkerClosedError, new_id

log = structlog.get_logger("livekit_sim.worker")

REGISTER_TIMEOUT = 10.0
SERVER_VERSION = "1.9.0-sim"
SERVER_PROTOCOL = 16
AGENT_PROTOCOL = 1


class WorkerConnection:
    """One worker's socket, seen by the job launcher as a :class:`~.state.WorkerChannel`."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws
        self._pending: dict[str, asyncio.Future[agent.AvailabilityResponse]] = {}
        self._closed = False

    async def send(self, message: agent.ServerMessage) -> None:
        """Send one server message; :class:`WorkerClosedError` if the socket is gone."""
        if self._closed or self._ws.closed:
            raise WorkerClosedError("worker closed")
        try:
            await self._ws.send_bytes(message.SerializeToString())
        except (ConnectionError, RuntimeError) as exc:
            raise WorkerClosedError("worker closed") from exc

    async def request_availability(self, job: agent.Job, wait_seconds: float) -> agent.AvailabilityResponse | None:
        """Ask whether the worker takes ``job``; None when it does not answer in time."""
        future: asyncio.Future[agent.AvailabilityResponse] = asyncio.get_running_loop().create_future()
        self._pending[job.id] = future
        try:
            await self.send(agent.ServerMessage(availability=agent.AvailabilityRequest(job=job)))
            return await asyncio.wait_for(future, wait_seconds)
        except TimeoutError:
            return None
        finally:
            self._pending.pop(job.id, None)

    def resolve(self, response: agent.AvailabilityResponse) -> None:
        """Hand an ``AvailabilityResponse`` to whoever waits for it (unknown job ids are ignored)."""
        future = self._pending.pop(response.job_id, None)
        if future is not None and not future.done():
            future.set_result(response)

    def close(self) -> None:
        """Fail every pending availability request."""
        self._closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(WorkerClosedError("worker closed"))
        self._pending.clear()


class WorkerEndpoint:
    """Handles ``GET /agent``."""

    def __init__(
        self, state: SimState, keys: dict[str, str], node_id: str = "ND_simulator", *, fixed_load: float | None = None
    ) -> None:
        self._state = state
        self._keys = keys
        self._fixed_load = fixed_load  # benchmarks: the load every worker is taken to have, whatever it reports
        self._server_info = models.ServerInfo(
            edition=models.ServerInfo.Standard,
            version=SERVER_VERSION,
            protocol=SERVER_PROTOCOL,
            agent_protocol=AGENT_PROTOCOL,
            node_id=node_id,
        )
        self._sockets: set[web.WebSocketResponse] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Authenticate (``video.agent`` grant), upgrade, register, then serve the worker until it leaves."""
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(status=404)
        try:
            token = bearer_token(request.headers.get("Authorization"), request.query.get("access_token"))
            claims = verify_token(token, self._keys) if token else None
        except TokenError as exc:
            return web.Response(status=401, text=str(exc))
        if claims is None or claims.video is None or not claims.video.agent:
            return web.Response(status=401, text="permissions denied")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        conn = WorkerConnection(ws)
        try:
            worker = await self._handshake(ws, conn, claims.api_key)
            if worker is not None:
                await self._serve(ws, conn, worker)
        finally:
            conn.close()
            self._sockets.discard(ws)
            await ws.close()
        return ws

    async def close_all(self) -> None:
        """Close every worker socket (shutdown, or a test killing workers)."""
        for ws in list(self._sockets):
            await ws.close()

    async def _handshake(self, ws: web.WebSocketResponse, conn: WorkerConnection, api_key: str) -> Worker | None:
        deadline = time.monotonic() + REGISTER_TIMEOUT
        while True:
            try:
                frame = await ws.receive(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                log.warning("worker did not register in time")
                return None
            if frame.type != WSMsgType.BINARY:
                return None
            msg = agent.WorkerMessage.FromString(frame.data)
            which = msg.WhichOneof("message")
            if which == "ping":
                await conn.send(_pong(msg.ping))
            elif which == "register":
                return await self._register(conn, msg.register, api_key)

    async def _register(self, conn: WorkerConnection, req: agent.RegisterWorkerRequest, api_key: str) -> Worker:
        permissions = models.ParticipantPermission()
        if req.HasField("allowed_permissions"):
            permissions.CopyFrom(req.allowed_permissions)
        else:
            permissions = models.ParticipantPermission(
                can_subscribe=True, can_publish=True, can_publish_data=True, can_update_metadata=True
            )
        worker = Worker(
            id=new_id("AW_"),
            channel=conn,
            api_key=api_key,
            agent_name=req.agent_name,
            namespace=req.namespace,
            job_type=req.type,
            deployment=req.deployment,
            version=req.version,
            permissions=permissions,
        )
        await conn.send(
            agent.ServerMessage(
                register=agent.RegisterWorkerResponse(worker_id=worker.id, server_info=self._server_info)
            )
        )
        self._state.workers[worker.id] = worker
        self._state.counters["workers_registered"] += 1
        log.info("worker registered", worker_id=worker.id, agent_name=worker.agent_name, version=worker.version)
        return worker

    async def _serve(self, ws: web.WebSocketResponse, conn: WorkerConnection, worker: Worker) -> None:
        try:
            async for frame in ws:
                if frame.type != WSMsgType.BINARY:
                    continue
                await self._dispatch(conn, worker, agent.WorkerMessage.FromString(frame.data))
        finally:
            self._state.workers.pop(worker.id, None)
            # The server forgets a closed worker's jobs: they are not re-assigned anywhere.
            self._state.counters["jobs_lost_with_worker"] += len(worker.jobs)
            for job in worker.jobs.values():
                self._state.job_ended(job)
            log.info("worker deregistered", worker_id=worker.id, running_jobs=len(worker.jobs))

    async def _dispatch(self, conn: WorkerConnection, worker: Worker, msg: agent.WorkerMessage) -> None:
        which = msg.WhichOneof("message")
        if which == "availability":
            conn.resolve(msg.availability)
        elif which == "update_job":
            _update_job(self._state, worker, msg.update_job)
        elif which == "update_worker":
            if msg.update_worker.HasField("status"):
                worker.status = msg.update_worker.status
            worker.load = msg.update_worker.load if self._fixed_load is None else self._fixed_load
        elif which == "ping":
            with contextlib.suppress(WorkerClosedError):
                await conn.send(_pong(msg.ping))
        else:
            # migrate_job and simulate_job are no-ops here (migration is not implemented in OSS either).
            log.debug("worker message ignored", kind=which, worker_id=worker.id)


def _pong(ping: agent.WorkerPing) -> agent.ServerMessage:
    return agent.ServerMessage(pong=agent.WorkerPong(last_timestamp=ping.timestamp, timestamp=int(time.time() * 1000)))


def _update_job(state: SimState, worker: Worker, update: agent.UpdateJobStatus) -> None:
    job = worker.jobs.get(update.job_id)
    if job is None:
        return  # the server only logs updates for unknown jobs
    now = time.time_ns()
    job.state.updated_at = now
    job.state.status = update.status
    job.state.error = update.error
    if update.status in (agent.JS_SUCCESS, agent.JS_FAILED):
        job.state.ended_at = now
        worker.jobs.pop(update.job_id, None)
        state.job_ended(job)
        state.counters["jobs_ended"] += 1
        state.counters[f"jobs_ended.{agent.JobStatus.Name(update.status)}"] += 1
        log.info("job ended", job_id=update.job_id, status=agent.JobStatus.Name(update.status), error=update.error)
