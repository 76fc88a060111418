"""The system under test on a real livekit-server: the agent joins its rooms over WebRTC.

The same launcher and ``bench`` profile as the simulator's phases (devstack.stack), with the LiveKitSide a real
server found by devstack.livekit_discovery; when there is none, the reason why (the phase is then skipped).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path

from bench.stack import Stack, create_flow, measured_pids
from devstack.livekit_discovery import discover_livekit
from devstack.livekit_side import DEV_KEY, DEV_SECRET, SIM_HOST, LiveKitSide
from devstack.profiles import BENCH, Profile
from devstack.server_process import free_tcp_port
from devstack.stack import found_servers, start_stack

REAL_ENV: Mapping[str, str] = {
    # The real server offers no job to a worker at load >= 0.7, and its load is the job count here (as in every
    # profile): 100 jobs of capacity let up to 70 run at once, above the dispatcher's 50 waiting for their agent.
    "AGENT_MAX_JOBS": "100",
    "AGENT_LOAD_THRESHOLD": "0.99",
    # The frontends join (bench.real_frontends): the agent waits for its user, starts the AgentSession and speaks the
    # greeting with the built-in offline TTS once the frontend subscribed to its audio; the frontend leaves at
    # agent.ready and the job ends soon after, instead of holding its executor for a rejoin.
    "AGENT_WAIT_FOR_USER": "true",
    "AGENT_USER_WAIT_SECONDS": "15",
    "AGENT_USER_REJOIN_GRACE_SECONDS": "0.5",
    "AGENT_TTS": "espeak",
}


def real_livekit_side(environ: Mapping[str, str], *, allow_build: bool) -> LiveKitSide | str:
    """A real LiveKit for one stack: ``LIVEKIT_URL`` from the environment, or a livekit-server binary the stack
    starts on a free loopback port; else the one-line reason there is none."""
    choice = discover_livekit(environ, allow_build=allow_build)
    if not choice.real:
        return f"no real LiveKit server: {choice.reason.split(': using')[0]}"
    if choice.binary is None:
        return LiveKitSide(choice.url, choice.api_key, choice.api_secret, False, choice.reason)
    url = f"http://{SIM_HOST}:{free_tcp_port()}"
    return LiveKitSide(url, DEV_KEY, DEV_SECRET, False, choice.reason, server=choice.binary)


def real_profile(executor: str) -> Profile:
    """The ``bench`` profile with the job-count load the real server needs, and ``executor`` for the agent's jobs."""
    env = {**BENCH.env, **REAL_ENV, "AGENT_JOB_EXECUTOR": executor}
    return replace(BENCH, name=f"bench-livekit-{executor}", env=env)


@asynccontextmanager
async def running_real_stack(side: LiveKitSide, executor: str, log_dir: Path) -> AsyncIterator[Stack]:
    """Servers, the livekit-server (when ``side`` names one) and the four services; an API key and a flow."""
    async with AsyncExitStack() as exits:
        redis, postgres = exits.enter_context(found_servers())
        services = await start_stack(
            real_profile(executor), redis_url=redis.url, database_url=postgres.url, livekit=side, log_path=log_dir
        )
        await exits.enter_async_context(services)
        # the stack's LiveKit URL, not side.url: a port taken meanwhile moves LiveKit (devstack.stack_livekit)
        stack = Stack(services.api_url, "", "", services.livekit_url, postgres.url, redis.url, services.api_key)
        stack.pids = measured_pids(redis, postgres, services)
        stack.flow_id = await create_flow(stack)
        yield stack
