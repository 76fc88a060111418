"""Through HTTP, with the services as processes, on a real LiveKit server: a frontend that joins with livekit.rtc
(the 202's livekitUrl and token) receives agent.ready from the agent; one dispatch per room under a burst; a
dispatch no worker took is recovered by the watchdog; DELETE cleans the room."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from livekit import api, rtc

from contracts.datachannel import AGENT_STATUS_TOPIC, FLOW_EVENTS_TOPIC, AgentReadyPayload, trusted_sender
from devstack.stack import StackHandle

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
READY_DEADLINE_S = 30.0


async def until(check: Callable[[], Awaitable[Any]], what: str, deadline_s: float = READY_DEADLINE_S) -> Any:
    """Poll ``check`` until it returns something truthy (returned); fail after ``deadline_s``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        found = await check()
        if found:
            return found
        if loop.time() > end:
            raise AssertionError(f"{what}: not within {deadline_s:.0f} s")
        await asyncio.sleep(0.1)


async def connect_when_created(room: rtc.Room, url: str, token: str, options: rtc.RoomOptions | None = None) -> None:
    """Join as a frontend must with room.auto_create off: the dispatcher creates the room just after the 202, so a
    join that came first ('requested room does not exist') is tried again, bounded."""
    loop = asyncio.get_running_loop()
    end = loop.time() + 10.0
    while True:
        try:
            await room.connect(url, token, options or rtc.RoomOptions())
            return
        except rtc.ConnectError as exc:
            if "requested room does not exist" not in str(exc) or loop.time() > end:
                raise
        await asyncio.sleep(0.2)


async def new_flow(client: httpx.AsyncClient) -> str:
    created = await client.post("/api/flows", json={"name": "real", "greeting": "Hello over WebRTC"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def status_of(client: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/sessions/{session_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@asynccontextmanager
async def frontend(session: dict[str, Any]) -> AsyncIterator[asyncio.Future[rtc.DataPacket]]:
    """Join with the 202's livekitUrl and token; yield the first agent-status packet to come."""
    received: asyncio.Future[rtc.DataPacket] = asyncio.get_running_loop().create_future()

    def on_data(packet: rtc.DataPacket) -> None:
        if packet.topic == AGENT_STATUS_TOPIC and not received.done():
            received.set_result(packet)

    room = rtc.Room()
    room.on("data_received", on_data)
    await connect_when_created(room, session["livekitUrl"], session["token"])
    try:
        yield received
    finally:
        await room.disconnect()


@asynccontextmanager
async def listening(url: str, token: str, *, hear_agent: bool = False) -> AsyncIterator[list[rtc.DataPacket]]:
    """Join with ``token`` (a watcher's, listen-only; ``hear_agent``: the user's, subscribing to the agent's audio
    as a browser does, without which the agent does not greet); yield the list every data packet is appended to."""
    packets: list[rtc.DataPacket] = []
    room = rtc.Room()
    room.on("data_received", packets.append)

    def on_track(publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> None:
        if hear_agent and participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            publication.set_subscribed(True)

    room.on("track_published", on_track)
    await connect_when_created(room, url, token, rtc.RoomOptions(auto_subscribe=False))
    for participant in list(room.remote_participants.values()):  # an agent already there published before we came
        for publication in list(participant.track_publications.values()):
            on_track(publication, participant)
    try:
        yield packets
    finally:
        await room.disconnect()


def flow_events(packets: list[rtc.DataPacket]) -> list[dict[str, Any]]:
    """The flow events a watcher may act on: sent by the server (no participant), as contracts.datachannel says."""
    return [
        json.loads(p.data)
        for p in packets
        if trusted_sender(p.topic, None, from_agent=False, from_server=p.participant is None)
    ]


def livekit_api(stack: StackHandle) -> api.LiveKitAPI:
    return api.LiveKitAPI(stack.livekit.url, stack.livekit.api_key, stack.livekit.api_secret)


async def ours(lk: api.LiveKitAPI, stack: StackHandle, room: str) -> list[str]:
    """The ids of the room's dispatches for the stack's agent."""
    return [
        d.id for d in await lk.agent_dispatch.list_dispatch(room) if d.agent_name == stack.env["LIVEKIT_AGENT_NAME"]
    ]


async def test_a_frontend_receives_agent_ready_and_delete_cleans_the_room_for_good(real_stack: StackHandle) -> None:
    async with real_stack.client() as client, livekit_api(real_stack) as lk:
        created = await client.post(f"/api/flows/{await new_flow(client)}/sessions")
        assert created.status_code == 202, created.text
        session = created.json()
        async with frontend(session) as received:
            packet = await asyncio.wait_for(received, READY_DEADLINE_S)
            payload = AgentReadyPayload.model_validate_json(packet.data)
            assert (payload.sessionId, payload.greeting) == (session["sessionId"], "Hello over WebRTC")
            assert packet.data == payload.to_bytes()
            assert packet.participant is not None
            assert packet.participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
            sid = session["sessionId"]
            await until(lambda: _has_status(client, sid, "ready"), "session ready")
            deleted = await client.delete(f"/api/sessions/{sid}")
            assert deleted.status_code in (200, 202, 204), deleted.text

            async def room_gone() -> bool:
                listed = await lk.room.list_rooms(api.ListRoomsRequest(names=[session["roomName"]]))
                return not listed.rooms

            await until(room_gone, "the room deleted after DELETE")

        # the session's token is still within its life, but a late join cannot re-create the ended session's room
        late = rtc.Room()
        with pytest.raises(rtc.ConnectError, match="requested room does not exist"):
            await late.connect(session["livekitUrl"], session["token"])
        assert await room_gone()


async def _has_status(client: httpx.AsyncClient, session_id: str, *wanted: str) -> bool:
    return (await status_of(client, session_id))["status"] in wanted


async def test_a_burst_gets_one_dispatch_per_room(real_stack: StackHandle) -> None:
    async with real_stack.client() as client, livekit_api(real_stack) as lk:
        flow = await new_flow(client)
        answers = await asyncio.gather(*(client.post(f"/api/flows/{flow}/sessions") for _ in range(10)))
        assert [a.status_code for a in answers] == [202] * 10
        sessions = [a.json() for a in answers]
        for session in sessions:
            sid = session["sessionId"]
            await until(lambda sid=sid: _has_status(client, sid, "dispatched", "agent_joined"), f"{sid} dispatched")
        counts = [len(await ours(lk, real_stack, s["roomName"])) for s in sessions]
        assert counts == [1] * 10
        for session in sessions:
            await client.delete(f"/api/sessions/{session['sessionId']}")


async def test_watchers_receive_the_flow_events_their_role_allows(real_stack: StackHandle) -> None:
    async with real_stack.client() as client:
        created = await client.post(f"/api/flows/{await new_flow(client)}/sessions")
        assert created.status_code == 202, created.text
        session = created.json()
        sid = session["sessionId"]
        tokens = {}
        for role in ("monitor", "admin"):
            watch = await client.post(f"/api/sessions/{sid}/watch", json={"role": role})
            assert watch.status_code == 200, watch.text
            tokens[role] = watch.json()
        async with (
            listening(tokens["monitor"]["livekitUrl"], tokens["monitor"]["token"]) as monitor,
            listening(tokens["admin"]["livekitUrl"], tokens["admin"]["token"]) as admin,
            listening(session["livekitUrl"], session["token"], hear_agent=True) as user,
        ):
            for role, packets in (("admin", admin), ("monitor", monitor)):

                async def saw_ready(packets: list[rtc.DataPacket] = packets) -> bool:
                    return any(e["name"] == "session.ready" for e in flow_events(packets))

                await until(saw_ready, f"the {role} watcher got session.ready")
            assert {e["kind"] for e in flow_events(monitor)} <= {"lifecycle", "stage"}
            assert "flow" in {e["kind"] for e in flow_events(admin)}  # flow.initialised, greeting.spoken
            assert all(e["sessionId"] == sid for e in flow_events(admin) + flow_events(monitor))
            assert [p.topic for p in user if p.topic == FLOW_EVENTS_TOPIC] == []  # never to the user
            assert AGENT_STATUS_TOPIC in {p.topic for p in user}
        await client.delete(f"/api/sessions/{sid}")


async def test_a_dispatch_no_worker_took_is_recovered_by_the_watchdog(real_stack: StackHandle) -> None:
    registered = sum("worker_registered" in line for line in list(real_stack.output) if line.startswith("agent | "))
    real_stack.kill("agent")  # kill -9: the worker's socket closes, the server forgets it
    async with real_stack.client() as client, livekit_api(real_stack) as lk:
        created = await client.post(f"/api/flows/{await new_flow(client)}/sessions")
        assert created.status_code == 202, created.text
        session = created.json()
        sid = session["sessionId"]
        await until(lambda: _has_status(client, sid, "dispatched"), "dispatched while no worker is registered")
        first = await ours(lk, real_stack, session["roomName"])
        assert len(first) == 1  # listed, but its job was dropped: nobody took it
        started = time.monotonic()
        await real_stack.start_service("agent", "agent")

        async def again() -> bool:
            lines = [line for line in list(real_stack.output) if line.startswith("agent | ")]
            return sum("worker_registered" in line for line in lines) > registered

        await until(again, "the agent registered again")
        async with frontend(session) as received:
            packet = await asyncio.wait_for(received, READY_DEADLINE_S)
            assert AgentReadyPayload.model_validate_json(packet.data).sessionId == sid
        recovered = await ours(lk, real_stack, session["roomName"])
        assert len(recovered) == 1 and recovered != first  # the watchdog replaced the dropped dispatch
        print(f"recovered {time.monotonic() - started:.1f} s after the agent came back")
        await client.delete(f"/api/sessions/{sid}")
