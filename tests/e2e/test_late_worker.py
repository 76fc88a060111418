"""Sessions requested while no agent worker is registered become ready once one registers, within the default
readiness deadline: the watchdog re-dispatches the jobs LiveKit dropped (services as processes, simulator)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest

from devstack.readiness import wait_for_sim_worker
from tests.e2e.conftest import SERVICES_WITHOUT_AGENT, Stack
from tests.polling import wait_until
from tests.stack_fixtures import running_stack, separate_database, with_redis_db

pytestmark = pytest.mark.e2e

SESSIONS = 6
DEFAULT_DEADLINE_S = 30.0  # API_READY_TIMEOUT_S's default, which this test leaves alone
DROPPED_WITHIN_S = 15.0
OWN_REDIS_DB = 3  # streams of our own: no other stack's dispatcher or session store reads them


@pytest.fixture
async def agentless(redis_url: str, database_url: str) -> AsyncIterator[Stack]:
    """Simulator, api, session store and dispatcher with default watchdog settings; no agent yet."""
    async with (
        separate_database(database_url) as own_database,
        running_stack(with_redis_db(redis_url, OWN_REDIS_DB), own_database, SERVICES_WITHOUT_AGENT) as stack,
    ):
        yield stack


async def _statuses(client: httpx.AsyncClient, session_ids: list[str]) -> dict[str, dict[str, object]]:
    bodies = await asyncio.gather(*(client.get(f"/api/sessions/{sid}") for sid in session_ids))
    return {sid: response.json() for sid, response in zip(session_ids, bodies, strict=True)}


async def _until(
    client: httpx.AsyncClient, session_ids: list[str], wanted: str, deadline_s: float
) -> dict[str, dict[str, object]]:
    end = time.monotonic() + deadline_s
    while True:
        found = await _statuses(client, session_ids)
        if all(body["status"] == wanted for body in found.values()):
            return found
        over = {sid: body["status"] for sid, body in found.items() if body["status"] in {"failed", "expired"}}
        assert not over, f"sessions over before {wanted!r}: {over}"
        assert time.monotonic() < end, f"not all {wanted!r} within {deadline_s} s: {found}"
        await asyncio.sleep(0.1)


async def _dropped_at_least(livekit_url: str, count: int) -> bool:
    """Whether the simulator has dropped ``count`` jobs for want of a worker."""
    async with httpx.AsyncClient(timeout=5) as sim:
        counters = (await sim.get(f"{livekit_url}/sim/state")).json()["counters"]
    return int(counters.get("jobs_dropped.no_worker", 0)) >= count


async def test_sessions_requested_before_the_worker_registers_get_ready_in_time(agentless: Stack) -> None:
    stack = agentless
    async with stack.client() as client:
        flow = await client.post("/api/flows", json={"name": "late-worker", "greeting": "Hello"})
        assert flow.status_code == 201, flow.text
        created = [await client.post(f"/api/flows/{flow.json()['id']}/sessions") for _ in range(SESSIONS)]
        assert all(r.status_code == 202 for r in created), [r.text for r in created]
        requested_at = time.monotonic()
        session_ids = [str(r.json()["sessionId"]) for r in created]
        try:
            # Dispatched with nobody to take the job: the simulator drops each one, as LiveKit does.
            await _until(client, session_ids, "dispatched", deadline_s=DROPPED_WITHIN_S)
            await wait_until(
                lambda: _dropped_at_least(stack.livekit_url, SESSIONS), deadline_s=DROPPED_WITHIN_S, what="drops"
            )
            # Only now the worker starts (its process takes seconds to register: the worker of an agent deploy).
            await stack.start_service("agent", "agent")
            await wait_for_sim_worker(stack.livekit_url, deadline_s=DEFAULT_DEADLINE_S)
            registered_s = time.monotonic() - requested_at
            ready = await _until(client, session_ids, "ready", deadline_s=DEFAULT_DEADLINE_S)
        except (AssertionError, httpx.HTTPError) as exc:
            raise AssertionError(f"{exc}\n--- stack output ---\n{stack.tail(120)}") from exc
    waited = []
    for body in ready.values():
        stages = body["stages"]
        assert isinstance(stages, dict)
        took = datetime.fromisoformat(stages["ready"]) - datetime.fromisoformat(stages["requested"])
        waited.append(took.total_seconds())
    assert max(waited) < DEFAULT_DEADLINE_S, waited
    print(
        f"worker registered {registered_s:.1f} s after the requests; "
        f"requested -> ready: {', '.join(f'{s:.1f}' for s in sorted(waited))} s"
    )
