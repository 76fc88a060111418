"""A real livekit-agents ``AgentServer`` against the simulator: built for a busy test machine, run until registered."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from livekit.agents import AgentServer, JobExecutorType

REGISTER_DEADLINE_S = 5.0
STOP_DEADLINE_S = 5.0


def agent_server_for(ws_url: str) -> AgentServer:
    """An AgentServer on the thread executor with no idle processes (the simulator's dev credentials)."""
    return AgentServer(
        job_executor_type=JobExecutorType.THREAD,
        ws_url=ws_url,
        api_key="devkey",
        api_secret="secret",
        host="127.0.0.1",
        port=0,
        num_idle_processes=0,
        # The default load is CPU use; on a busy 2-core box it reaches 1.0 and the server (like
        # the real one) then finds "no workers with sufficient capacity" and drops the job.
        load_fnc=lambda: 0.0,
    )


@contextlib.asynccontextmanager
async def registered(server: AgentServer) -> AsyncIterator[None]:
    """Run ``server`` for the block, entered once it has registered with the server; closed (bounded) after."""
    done = asyncio.Event()
    server.on("worker_registered", lambda *_: done.set())
    run_task = asyncio.create_task(server.run(devmode=True))
    try:
        async with asyncio.timeout(REGISTER_DEADLINE_S):
            await done.wait()
        yield
    finally:
        await server.aclose()
        await asyncio.wait_for(run_task, STOP_DEADLINE_S)
