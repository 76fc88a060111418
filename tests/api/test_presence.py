"""The presence check for operators against the LiveKit simulator: asks once, answers at once (route and CLI)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from fastapi import FastAPI
from livekit import api

from devstack.livekit_sim import Simulator
from devstack.room_bus_client import joined_bus
from services.api.admin import KeyRequest, create_key
from services.api.app import create_app
from services.api.livekit_room_reader import LiveKitRoomReader, PresenceSettings, presence_check
from services.api.presence import LiveKitUnavailableError
from services.api.scopes import FLOWS, OPS, SESSIONS
from services.api.settings import ApiSettings
from tests.api.conftest import http_client, new_flow


def _token(room: str, identity: str, *, kind: str = "", attributes: dict[str, str] | None = None) -> str:
    token = api.AccessToken("devkey", "secret").with_identity(identity).with_attributes(attributes or {})
    token = token.with_grants(api.VideoGrants(room_join=True, room=room))
    return (token.with_kind(kind) if kind else token).to_jwt()  # type: ignore[arg-type]


async def test_presence_of_the_agent_in_the_sessions_room(
    api_app: FastAPI, api_settings: ApiSettings, database_url: str, sim: Simulator
) -> None:
    """(``api_app``: the sessions table exists; this test runs an app of its own, against the simulator.)"""
    settings = api_settings.model_copy(update={"livekit_url": sim.url})
    app: FastAPI = create_app(settings)
    key, _ = await create_key(
        database_url, f"ops-{uuid.uuid4().hex[:8]}", request=KeyRequest(scopes=[SESSIONS, FLOWS, OPS])
    )
    other, _ = await create_key(database_url, f"other-{uuid.uuid4().hex[:8]}", request=KeyRequest(scopes=[OPS]))
    async with app.router.lifespan_context(app), http_client(app, key) as client, http_client(app, other) as stranger:
        created = (await client.post(f"/api/flows/{await new_flow(client)}/sessions")).json()
        session_id, room = created["sessionId"], created["roomName"]
        url = f"/api/sessions/{session_id}/presence"

        no_room = await client.get(url)  # nobody created the room yet (no dispatcher here)
        async with api.LiveKitAPI(sim.url, "devkey", "secret") as lk:
            await lk.room.create_room(api.CreateRoomRequest(name=room))
        empty = await client.get(url)
        before = datetime.now(UTC)
        agent_token = _token(room, "agent-1", kind="agent", attributes={"lk.agent.state": "listening"})
        async with joined_bus(sim.url, _token(room, "user-1")), joined_bus(sim.url, agent_token):
            started = time.perf_counter()
            present = await client.get(url)
            took_s = time.perf_counter() - started
        unknown = await client.get(f"/api/sessions/{uuid.uuid4().hex}/presence")
        foreign = await stranger.get(url)
    assert no_room.status_code == 200, no_room.text
    assert no_room.json() | {"sessionStatus": None} == {
        "sessionId": session_id, "roomName": room, "roomExists": False, "inRoom": False, "agentIdentity": None,
        "joinedAt": None, "state": None, "participants": 0, "agents": 0, "sessionStatus": None,
    }  # fmt: skip
    assert (empty.json()["roomExists"], empty.json()["inRoom"]) == (True, False)
    body = present.json()
    assert (body["inRoom"], body["agentIdentity"], body["state"], body["participants"], body["agents"]) == (
        True, "agent-1", "listening", 2, 1,
    )  # fmt: skip
    joined = datetime.fromisoformat(body["joinedAt"])
    assert before.timestamp() - 2 <= joined.timestamp() <= time.time() + 2
    assert took_s < 1.0  # asked once, answered at once
    assert unknown.status_code == 404
    assert foreign.status_code == 404  # another organisation's session does not exist for this key


async def test_presence_needs_the_ops_scope(api_app: FastAPI, database_url: str) -> None:
    key, _ = await create_key(database_url, f"plain-{uuid.uuid4().hex[:8]}", request=KeyRequest(scopes=[SESSIONS]))
    async with http_client(api_app, key) as client:
        response = await client.get(f"/api/sessions/{uuid.uuid4().hex}/presence")
    assert response.status_code == 403
    assert "--scope ops" in response.json()["error"]


async def test_an_unreachable_livekit_is_a_clear_error_within_the_timeout() -> None:
    reader = LiveKitRoomReader("http://127.0.0.1:9", "devkey", "secret", timeout_s=1.0)  # discard port: refused
    started = time.perf_counter()
    with pytest.raises(LiveKitUnavailableError, match=r"LiveKit at http://127.0.0.1:9 did not answer within 1 s"):
        await reader.participants("any-room")
    await reader.aclose()
    assert time.perf_counter() - started < 3.0


async def test_the_cli_answers_as_the_route(api_app: FastAPI, database_url: str, sim: Simulator) -> None:
    session_id = uuid.uuid4().hex
    room = f"session-{session_id}"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO sessions (id, org_id, room_name, status) VALUES (%s, 'o', %s, 'ready')", (session_id, room)
        )
    async with api.LiveKitAPI(sim.url, "devkey", "secret") as lk:
        await lk.room.create_room(api.CreateRoomRequest(name=room))
    env = {**os.environ, "DATABASE_URL": database_url, "LIVEKIT_URL": sim.url, "DEV_MODE": "true"}
    agent_token = _token(room, "agent-7", kind="agent", attributes={"lk.agent.state": "speaking"})
    command = [sys.executable, "-m", "services.api", "presence"]
    async with joined_bus(sim.url, agent_token):  # a process of its own: the command configures logging
        found = await asyncio.to_thread(
            subprocess.run, [*command, session_id], env=env, capture_output=True, text=True, timeout=60
        )
    missing = await presence_check(PresenceSettings(database_url=database_url, livekit_url=sim.url, dev_mode=True), "x")
    assert found.returncode == 0, found.stderr
    body = json.loads(found.stdout)
    assert (body["inRoom"], body["agentIdentity"], body["state"], body["sessionStatus"]) == (
        True, "agent-7", "speaking", "ready",
    )  # fmt: skip
    assert missing is None  # the command then says "not found" and exits 1
