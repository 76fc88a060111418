"""SIGTERM drains the agent service: no new jobs, running sessions finish (up to a drain timeout), exit 0.

Each agent is its own process (``python -m services.agent``) beside a stack of the ``e2e`` profile (simulator,
API, session store, dispatcher) with its own Redis and PostgreSQL databases. SIGTERM goes to the agent's process
only, as Kubernetes and ``docker stop`` send it to PID 1.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from livekit import api
from redis.asyncio import Redis

from contracts.streams import AGENT_JOB_ENDED
from devstack.processes import ChildExit
from devstack.readiness import wait_for_sim_worker
from devstack.stack import StackHandle
from tests.agent.bus_client import join_bus
from tests.agent.stream_events import event_for
from tests.e2e.conftest import SERVICES_WITHOUT_AGENT
from tests.polling import wait_until
from tests.stack_fixtures import running_stack, separate_database, with_redis_db

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

OWN_REDIS_DB = 7  # streams of our own: no other stack's dispatcher or session store reads them
REJOIN_GRACE_S = 0.5
USER_WAIT_S = 2.0
DRAIN_TIMEOUT_S = 2
# After the drain timeout: the worker ends its jobs (each reports its end) and closes; then the interpreter exits.
EXIT_MARGIN_S = 8.0  # well below livekit-agents' own 15 s wait for a job's entrypoint, which this must not need


@pytest.fixture(scope="module")
async def stack(redis_url: str, database_url: str) -> AsyncIterator[StackHandle]:
    """Simulator, api, session store and dispatcher; each test starts (and signals) its own agents."""
    async with (
        separate_database(database_url) as own_database,
        running_stack(with_redis_db(redis_url, OWN_REDIS_DB), own_database, SERVICES_WITHOUT_AGENT) as stack,
    ):
        yield stack


@pytest.fixture
async def redis(stack: StackHandle) -> AsyncIterator[Redis]:
    client = Redis.from_url(stack.env["REDIS_URL"])
    try:
        yield client
    finally:
        await client.aclose()


async def _sim_workers(stack: StackHandle) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5) as sim:
        workers: list[dict[str, Any]] = (await sim.get(f"{stack.livekit_url}/sim/state")).json()["workers"]
    return workers


async def _start_agents(stack: StackHandle, *labels: str, **env: str) -> dict[str, str]:
    """Start an agent process under each label, all at once; return their worker ids once each has registered."""
    argv = [sys.executable, "-m", "services.agent"]
    for label in labels:
        await stack.start_child(label, argv, {**stack.env, "CONSUMER_NAME": label, **env})
    await wait_for_sim_worker(stack.livekit_url, deadline_s=60)
    workers: dict[str, str] = {}

    def registered() -> bool:  # each agent logs its worker id once registered (services.agent.worker)
        for line in list(stack.output):
            label, _, text = line.partition(" | ")
            if label in labels and '"worker_registered"' in text:
                workers[label] = json.loads(text)["worker_id"]
        return len(workers) == len(labels)

    await wait_until(registered, deadline_s=60, what=f"{', '.join(labels)} registered", interval_s=0.1)
    return workers


async def _worker_status(stack: StackHandle, worker_id: str) -> str | None:
    return next((str(w["status"]) for w in await _sim_workers(stack) if w["id"] == worker_id), None)


async def _exit(stack: StackHandle, label: str, deadline_s: float) -> ChildExit:
    try:
        return await asyncio.wait_for(stack.group.wait_exit(label), timeout=deadline_s)
    except TimeoutError:
        raise AssertionError(f"{label} did not exit within {deadline_s} s") from None


async def _status(client: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"/api/sessions/{session_id}")).json()
    return body


async def _until(client: httpx.AsyncClient, session_id: str, wanted: str, deadline_s: float) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        seen.update(await _status(client, session_id))
        return seen["status"] == wanted

    await wait_until(reached, deadline_s=deadline_s, what=f"session {session_id} {wanted}", interval_s=0.1)
    return seen


async def _until_ready_reached(client: httpx.AsyncClient, session_id: str, deadline_s: float) -> None:
    """Until the session has been ready (it may have ended since)."""

    async def reached() -> bool:
        return (await _status(client, session_id))["stages"]["ready"] is not None

    await wait_until(reached, deadline_s=deadline_s, what=f"session {session_id} ready", interval_s=0.1)


async def _room_made(client: httpx.AsyncClient, session_id: str) -> None:
    """Until the dispatcher made the session's room: LiveKit (auto_create off) refuses a join before that (404)."""

    async def made() -> bool:
        return (await _status(client, session_id))["stages"]["dispatched"] is not None

    await wait_until(made, deadline_s=15, what=f"session {session_id} dispatched", interval_s=0.05)


def _stop_leftovers(stack: StackHandle, *labels: str) -> None:
    """SIGKILL this test's agents that still run (a failed test): the next test's jobs must not go to them."""
    for label in labels:
        if label in stack.group.running():
            stack.kill(label)


async def _job_workers(stack: StackHandle, room: str) -> set[str]:
    """Ids of the workers the room's jobs went to (the simulator lists each job as assigned)."""
    async with api.LiveKitAPI(stack.livekit_url, stack.env["LIVEKIT_API_KEY"], stack.env["LIVEKIT_API_SECRET"]) as lk:
        dispatches = await lk.agent_dispatch.list_dispatch(room_name=room)
    return {job.state.worker_id for d in dispatches for job in d.state.jobs}


async def _new_session(client: httpx.AsyncClient, flow_id: str) -> dict[str, str]:
    created = await client.post(f"/api/flows/{flow_id}/sessions")
    assert created.status_code == 202, created.text
    body: dict[str, str] = created.json()
    return body


async def _flow(client: httpx.AsyncClient) -> str:
    flow = await client.post("/api/flows", json={"name": f"drain-{uuid.uuid4().hex[:6]}", "greeting": "Hello"})
    assert flow.status_code == 201, flow.text
    return str(flow.json()["id"])


async def test_sigterm_stops_new_jobs_lets_the_running_session_end_normally_and_exits_0(
    stack: StackHandle, redis: Redis
) -> None:
    # Two workers, as during a rolling deploy: the one that takes the first session is told to stop. Sessions with
    # no user end USER_WAIT_S after ready, so the other worker is idle again when the test stops it at the end.
    workers = await _start_agents(
        stack,
        "agent-1",
        "agent-2",
        AGENT_USER_REJOIN_GRACE_SECONDS=str(REJOIN_GRACE_S),
        AGENT_USER_WAIT_SECONDS=str(USER_WAIT_S),
        AGENT_DRAIN_TIMEOUT_SECONDS="60",
    )
    try:
        async with stack.client() as client:
            flow_id = await _flow(client)
            first = await _new_session(client, flow_id)
            await _room_made(client, first["sessionId"])
            async with join_bus(stack.livekit_url, first["token"]):
                await _until(client, first["sessionId"], "ready", deadline_s=15)
                (draining,) = await _job_workers(stack, first["roomName"])
                label = next(label for label, worker in workers.items() if worker == draining)
                other_label, other = next((lbl, worker) for lbl, worker in workers.items() if lbl != label)

                os.kill(stack.pids[label], signal.SIGTERM)
                signalled = time.monotonic()
                await wait_until(
                    lambda: _worker_status_is(stack, draining, "WS_FULL"), deadline_s=5, what="the worker draining"
                )
                # (a) new sessions go to the other worker, never to the draining one
                later = [await _new_session(client, flow_id) for _ in range(3)]
                for session in later:
                    await _until_ready_reached(client, session["sessionId"], deadline_s=15)
                    assert await _job_workers(stack, session["roomName"]) == {other}, session["sessionId"]
                # (b) the running session goes on while its user stays
                assert (await _status(client, first["sessionId"]))["status"] == "ready"
                assert label in stack.group.running()
            left = time.monotonic()
            # (b) ... and ends as the user leaving (after the rejoin grace), not as a shutdown
            ended = await event_for(redis, AGENT_JOB_ENDED, first["sessionId"], timeout=10.0)
            assert (ended["code"], ended["was_ready"]) == ("user_left", True), ended
            final = await _until(client, first["sessionId"], "ended", deadline_s=10)
            assert final["endCode"] == "user_left", final
            # (c) the process exits 0 once its job ended
            exited = await _exit(stack, label, deadline_s=15)
            assert exited == ChildExit(label, 0), exited.last_lines
            print(f"SIGTERM -> user left: {left - signalled:.1f} s; user left -> exit: {time.monotonic() - left:.1f} s")
            for session in later:  # nobody joined them: over USER_WAIT_S after ready
                over = await _until(client, session["sessionId"], "ended", deadline_s=10)
                assert over["endCode"] == "no_user_joined", over
            os.kill(stack.pids[other_label], signal.SIGTERM)  # idle: exits at once
            assert await _exit(stack, other_label, deadline_s=EXIT_MARGIN_S) == ChildExit(other_label, 0)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- stack output ---\n{stack.tail(80)}") from exc
    finally:
        _stop_leftovers(stack, *workers)


@pytest.mark.parametrize("executor", ["thread", "process"])
async def test_a_session_outliving_the_drain_timeout_ends_as_a_shutdown_and_the_process_exits_in_time(
    stack: StackHandle, redis: Redis, executor: str
) -> None:
    label = f"agent-short-drain-{executor}"
    await _start_agents(stack, label, AGENT_DRAIN_TIMEOUT_SECONDS=str(DRAIN_TIMEOUT_S), AGENT_JOB_EXECUTOR=executor)
    try:
        async with stack.client() as client:
            session = await _new_session(client, await _flow(client))
            await _room_made(client, session["sessionId"])
            async with join_bus(stack.livekit_url, session["token"]):  # the user never leaves
                await _until(client, session["sessionId"], "ready", deadline_s=15)
                os.kill(stack.pids[label], signal.SIGTERM)
                signalled = time.monotonic()
                exited = await _exit(stack, label, deadline_s=DRAIN_TIMEOUT_S + EXIT_MARGIN_S)
                took = time.monotonic() - signalled
                assert exited == ChildExit(label, 0), exited.last_lines
                assert took >= DRAIN_TIMEOUT_S * 0.9, f"exited after {took:.1f} s: before its drain timeout"
                ended = await event_for(redis, AGENT_JOB_ENDED, session["sessionId"], timeout=5.0)
                assert (ended["code"], ended["was_ready"]) == ("agent_job_ended", True), ended
                assert f"drain timeout ({DRAIN_TIMEOUT_S} s)" in ended["reason"], ended
                final = await _until(client, session["sessionId"], "ended", deadline_s=10)
                assert final["endCode"] == "agent_job_ended" and "shut down" in final["reason"], final
            print(f"{executor} executor: SIGTERM -> exit with a {DRAIN_TIMEOUT_S} s drain timeout: {took:.1f} s")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- stack output ---\n{stack.tail(80)}") from exc
    finally:
        _stop_leftovers(stack, label)


async def _worker_status_is(stack: StackHandle, worker_id: str, status: str) -> bool:
    return await _worker_status(stack, worker_id) == status
