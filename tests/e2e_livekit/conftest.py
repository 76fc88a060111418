"""The whole system as processes on a real LiveKit server: devstack.stack's ``e2e`` profile with a livekit-server
of its own (webhooks to the stack's API), the agent on WebRTC and waiting for the user, a short watchdog."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from devstack.livekit_discovery import LiveKitChoice
from devstack.livekit_side import DEV_KEY, DEV_SECRET, SIM_HOST, LiveKitSide
from devstack.profiles import E2E
from devstack.server_process import free_tcp_port
from devstack.stack import SERVICES, StackHandle, start_stack
from tests.stack_fixtures import separate_database, with_redis_db

JOIN_TIMEOUT_S = 4  # the watchdog re-dispatches a session whose agent has not joined after this long

REAL_E2E = replace(
    E2E,
    name="e2e-livekit",
    env={
        **E2E.env,
        "AGENT_WAIT_FOR_USER": "true",  # the frontend joins: agent.ready only once it is there
        "AGENT_USER_WAIT_SECONDS": "15",
        "DISPATCH_JOIN_TIMEOUT_S": str(JOIN_TIMEOUT_S),
        # the watchdog test restarts the agent (a process start, seconds on a loaded machine): room for re-dispatches
        "DISPATCH_MAX_ATTEMPTS": "10",
        "READY_TIMEOUT_S": "60",
    },
)


def side_of(choice: LiveKitChoice) -> LiveKitSide:
    """The stack's LiveKit: the given server, or the binary started by the stack on a free port."""
    if choice.binary is None:
        return LiveKitSide(choice.url, choice.api_key, choice.api_secret, False, choice.reason)
    url = f"http://{SIM_HOST}:{free_tcp_port()}"
    return LiveKitSide(url, DEV_KEY, DEV_SECRET, False, choice.reason, server=choice.binary)


@pytest.fixture(scope="module")
async def real_stack(
    real_livekit_choice: LiveKitChoice, redis_url: str, database_url: str
) -> AsyncIterator[StackHandle]:
    """The four services and a livekit-server, on databases of their own (no other stack takes their messages)."""
    async with (
        separate_database(database_url) as own_database,
        await start_stack(
            REAL_E2E,
            redis_url=with_redis_db(redis_url, 4),  # 1: e2e without agent, 2: demo
            database_url=own_database,
            services=SERVICES,
            livekit=side_of(real_livekit_choice),
        ) as stack,
    ):
        yield stack
