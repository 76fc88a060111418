"""Clients that just disappear: their sessions end by themselves and the organisation can start new ones.

In one process, on real Redis and PostgreSQL: the API (served by uvicorn, so the simulator can reach its webhook
route), the session store, and the LiveKit simulator sending signed webhooks to the API. The dispatcher and the
agent are stood in for by their events (``session.dispatched``, ``agent.joined``, ``agent.ready``): what is under
test is how sessions end and free their admission slots, not how they start.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import uvicorn
from faststream.redis import RedisBroker
from livekit import api
from redis.asyncio import Redis

from contracts.events import AgentJoined, AgentReady, SessionDispatched
from contracts.keys import open_sessions_key
from devstack.livekit_sim import Simulator, SimulatorConfig, run_simulator
from services.api.admin import create_key
from services.api.app import create_app as create_api
from services.api.settings import ApiSettings
from services.runtime.publishing import BrokerPublisher
from services.session_store.app import create_app as create_store
from services.session_store.settings import SessionStoreSettings
from tests.agent.bus_client import join_bus
from tests.polling import wait_until

CAP = 100
GRACE_S = 1.0


@dataclass
class Stack:
    """The running pieces and an HTTP client of one fresh organisation."""

    api_url: str
    client: httpx.AsyncClient
    sim: Simulator
    publisher: BrokerPublisher
    database_url: str
    flow_id: str
    redis_url: str
    org_id: str


async def _serve(app: object, stack: AsyncExitStack) -> str:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))  # type: ignore[arg-type]
    task = asyncio.create_task(server.serve())

    async def stop() -> None:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)

    stack.push_async_callback(stop)
    async with asyncio.timeout(30):
        while not server.started:
            assert not task.done(), "the API server stopped during start-up"
            await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
async def stack(redis_url: str, database_url: str) -> AsyncIterator[Stack]:
    redis_db = urlunsplit(urlsplit(redis_url)._replace(path="/6"))  # its own streams: no other test's consumers
    async with AsyncExitStack() as exits:
        api_app = create_api(
            ApiSettings(redis_url=redis_db, database_url=database_url, dev_mode=True, max_open_sessions_per_org=CAP)
        )
        await exits.enter_async_context(api_app.router.lifespan_context(api_app))
        api_url = await _serve(api_app, exits)
        store = create_store(
            SessionStoreSettings(
                redis_url=redis_db,
                database_url=database_url,
                dev_mode=True,  # applies its migrations: the file also runs on its own, on a fresh database
                consumer_name=f"t-{uuid.uuid4().hex[:8]}",
                expiry_interval_s=0.2,
                end_scan_interval_s=0.2,
                user_left_grace_s=GRACE_S,
            )
        )
        await asyncio.wait_for(store.start(), timeout=30)
        exits.push_async_callback(lambda: asyncio.wait_for(store.stop(), timeout=30))
        config = SimulatorConfig(webhook_urls=[f"{api_url}/api/livekit/webhook"], reap_interval=0.1)
        sim = await exits.enter_async_context(run_simulator(config=config))
        broker = RedisBroker(redis_db)
        await broker.connect()
        exits.push_async_callback(broker.stop)
        key, org_id = await create_key(database_url, f"org-{uuid.uuid4().hex[:8]}")
        client = await exits.enter_async_context(
            httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        )
        flow = await client.post("/api/flows", json={"name": "abandon", "greeting": "Hi"})
        assert flow.status_code == 201, flow.text
        yield Stack(api_url, client, sim, BrokerPublisher(broker), database_url, flow.json()["id"], redis_db, org_id)


async def _request(stack: Stack, n: int) -> list[httpx.Response]:
    gate = asyncio.Semaphore(20)

    async def one() -> httpx.Response:
        async with gate:
            return await stack.client.post(f"/api/flows/{stack.flow_id}/sessions")

    return await asyncio.gather(*(one() for _ in range(n)))


async def _make_ready(stack: Stack, created: list[dict[str, str]]) -> None:
    """What the dispatcher and the agent would announce for each session."""
    for session in created:
        sid, room = session["sessionId"], session["roomName"]
        await stack.publisher.publish(SessionDispatched(session_id=sid, room_name=room, dispatch_id="AD_t"))
        await stack.publisher.publish(AgentJoined(session_id=sid, room_name=room, job_id="AJ_t"))
        await stack.publisher.publish(AgentReady(session_id=sid, greeting="Hi"))


async def _statuses(stack: Stack, ids: list[str]) -> dict[str, tuple[str, str | None]]:
    async with await psycopg.AsyncConnection.connect(stack.database_url) as conn:
        cur = await conn.execute("SELECT id, status, end_code FROM sessions WHERE id = ANY(%s)", (ids,))
        return {sid: (status, code) for sid, status, code in await cur.fetchall()}


async def _wait_for(stack: Stack, ids: list[str], done: set[str], timeout: float) -> dict[str, tuple[str, str | None]]:
    deadline = time.monotonic() + timeout
    while True:
        found = await _statuses(stack, ids)
        if len(found) == len(ids) and all(status in done for status, _ in found.values()):
            return found
        waiting = sorted({s for s, _ in found.values()} - done)
        assert time.monotonic() < deadline, f"after {timeout} s: {len(found)} rows, still {waiting}"
        await asyncio.sleep(0.1)


async def _wait_slots_free(stack: Stack, timeout: float) -> None:
    """Until the organisation holds no admission slot (the session store frees one as it announces its end)."""
    redis = Redis.from_url(stack.redis_url)

    async def none_held() -> bool:
        return await redis.zcard(open_sessions_key(stack.org_id)) == 0

    try:
        await wait_until(none_held, deadline_s=timeout, what="the organisation's admission slots freed")
    finally:
        await redis.aclose()


async def test_150_sessions_under_a_cap_of_100_whose_clients_disappear(stack: Stack) -> None:
    started = time.monotonic()
    first = await _request(stack, 150)
    codes = sorted(r.status_code for r in first)
    assert codes.count(202) == CAP and codes.count(429) == 50, codes
    created = [r.json() for r in first if r.status_code == 202]
    ids = [c["sessionId"] for c in created]
    await _make_ready(stack, created)
    await _wait_for(stack, ids, {"ready"}, timeout=20)

    # Every client joins its room with the token it got, then disappears without a DELETE.
    async with AsyncExitStack() as clients:
        for c in created:
            await clients.enter_async_context(join_bus(stack.sim.url, c["token"]))
        assert (await stack.client.post(f"/api/flows/{stack.flow_id}/sessions")).status_code == 429
    gone_at = time.monotonic()

    ended = await _wait_for(stack, ids, {"ended"}, timeout=20)
    ended_after_s = time.monotonic() - gone_at
    assert {code for _, code in ended.values()} == {"user_left"}
    # the slots go with the announcement of the ended status, just after its commit: wait for that, not the row
    await _wait_slots_free(stack, timeout=10)
    again = await _request(stack, 50)
    assert [r.status_code for r in again] == [202] * 50, [r.text for r in again if r.status_code != 202][:3]
    await _wait_for(stack, [r.json()["sessionId"] for r in again], {"pending"}, timeout=20)  # recorded
    print(
        f"\n150 requested under a cap of {CAP}; {CAP} clients disappeared; all ended as user_left "
        f"{ended_after_s:.1f} s later (grace {GRACE_S:g} s); 50 new sessions accepted; "
        f"whole test {time.monotonic() - started:.1f} s"
    )


async def test_a_deleted_room_ends_its_session_through_the_webhook(stack: Stack) -> None:
    [response] = await _request(stack, 1)
    created = response.json()
    await _make_ready(stack, [created])
    await _wait_for(stack, [created["sessionId"]], {"ready"}, timeout=10)
    async with join_bus(stack.sim.url, created["token"]):
        async with api.LiveKitAPI(stack.sim.url, "devkey", "secret") as lk:
            await lk.room.delete_room(api.DeleteRoomRequest(room=created["roomName"]))
        ended = await _wait_for(stack, [created["sessionId"]], {"ended"}, timeout=10)
    assert ended[created["sessionId"]] == ("ended", "room_closed")
    session = (await stack.client.get(f"/api/sessions/{created['sessionId']}")).json()
    assert session["status"] == "ended" and session["endCode"] == "room_closed"
    assert session["reason"].startswith("The room was closed.")
