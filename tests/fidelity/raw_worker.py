"""A bare agent worker on the ``/agent`` WebSocket (``WorkerMessage`` / ``ServerMessage`` protobufs): it answers
offers when and how a test says, which the livekit-agents ``AgentServer`` cannot be made to do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from livekit import api
from livekit.protocol import agent

from devstack.livekit_server import RunningLiveKit


class RawWorker:
    """One registered worker; server messages are queued by kind (``availability``, ``assignment``, ...)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._queues: dict[str, asyncio.Queue[agent.ServerMessage]] = {}
        self._reader: asyncio.Task[None] | None = None

    def _queue(self, kind: str) -> asyncio.Queue[agent.ServerMessage]:
        return self._queues.setdefault(kind, asyncio.Queue())

    async def _read(self) -> None:
        async for frame in self._ws:
            if frame.type == aiohttp.WSMsgType.BINARY:
                message = agent.ServerMessage.FromString(frame.data)
                self._queue(message.WhichOneof("message") or "").put_nowait(message)

    async def send(self, message: agent.WorkerMessage) -> None:
        """Send one worker message."""
        await self._ws.send_bytes(message.SerializeToString())

    async def next(self, kind: str, deadline_s: float) -> agent.ServerMessage | None:
        """The next server message of ``kind`` within ``deadline_s``, else None."""
        try:
            return await asyncio.wait_for(self._queue(kind).get(), deadline_s)
        except TimeoutError:
            return None

    async def set_load(self, load: float) -> None:
        """Report ``load`` (status available); return once the server has read it (a ping answered after it: the
        server handles one worker's messages in order)."""
        status = agent.UpdateWorkerStatus(status=agent.WS_AVAILABLE, load=load)
        await self.send(agent.WorkerMessage(update_worker=status))
        await self.send(agent.WorkerMessage(ping=agent.WorkerPing(timestamp=1)))
        if await self.next("pong", 5.0) is None:
            raise TimeoutError("the server did not answer a ping within 5 s")

    async def answer(self, job_id: str, *, available: bool, identity: str = "") -> None:
        """Answer an availability request."""
        response = agent.AvailabilityResponse(job_id=job_id, available=available, participant_identity=identity)
        await self.send(agent.WorkerMessage(availability=response))


@asynccontextmanager
async def raw_worker(server: RunningLiveKit, agent_name: str, *, load: float = 0.0) -> AsyncIterator[RawWorker]:
    """Register a worker for ``agent_name`` reporting ``load``; unregister (close) on exit."""
    token = api.AccessToken(server.api_key, server.api_secret).with_grants(api.VideoGrants(agent=True)).to_jwt()
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{server.ws_url}/agent", headers={"Authorization": f"Bearer {token}"}) as ws,
    ):
        worker = RawWorker(ws)
        worker._reader = asyncio.get_running_loop().create_task(worker._read())
        register = agent.RegisterWorkerRequest(type=agent.JT_ROOM, agent_name=agent_name, version="1")
        await worker.send(agent.WorkerMessage(register=register))
        if await worker.next("register", 5.0) is None:
            raise TimeoutError("the server did not answer the registration within 5 s")
        await worker.set_load(load)
        try:
            yield worker
        finally:
            worker._reader.cancel()
