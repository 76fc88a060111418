"""The polling baseline: the design this project replaces, reproduced as one handler.

Per request: create the room, dispatch the agent, then list the room's participants every 100 ms until
the agent is there (15 s timeout), wait a 300 ms grace period, and only then answer. The request holds
its server's resources for the whole time. The real livekit-api client talks to the simulator.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from livekit import api

from contracts.job import AgentJobMetadata
from services.api.tokens import participant_token

POLL_INTERVAL_S = 0.1
AGENT_TIMEOUT_S = 15.0
GRACE_S = 0.3


async def agent_present(lk: api.LiveKitAPI, room_name: str) -> bool:
    """Whether an agent participant is in the room now (one ListParticipants call)."""
    listed = await lk.room.list_participants(api.ListParticipantsRequest(room=room_name))
    return any(p.kind == api.ParticipantInfo.Kind.AGENT for p in listed.participants)


async def wait_for_agent(lk: api.LiveKitAPI, room_name: str, timeout_s: float = AGENT_TIMEOUT_S) -> bool:
    """Poll every 100 ms until the agent appears (True) or the timeout passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await agent_present(lk, room_name):
            return True
        await asyncio.sleep(POLL_INTERVAL_S)
    return False


def create_polling_app() -> FastAPI:
    """The baseline app; the LiveKit client is built in the lifespan from ``LIVEKIT_*``."""
    url = os.environ["LIVEKIT_URL"]
    api_key = os.environ.get("LIVEKIT_API_KEY", "devkey")
    api_secret = os.environ.get("LIVEKIT_API_SECRET", "secret")
    agent_name = os.environ.get("LIVEKIT_AGENT_NAME", "agentready")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        lk = api.LiveKitAPI(url, api_key, api_secret)
        app.state.lk = lk
        try:
            yield
        finally:
            await lk.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/api/flows/{flow_id}/sessions", status_code=200, response_model=None)
    async def create_session(flow_id: str, request: Request) -> dict[str, str] | JSONResponse:
        """Create the room, dispatch, poll for the agent, grace period, answer."""
        lk: api.LiveKitAPI = request.app.state.lk
        session_id = uuid.uuid4().hex
        room_name = f"poll-{session_id}"
        metadata = AgentJobMetadata(
            session_id=session_id,
            flow_id=flow_id,
            org_id="bench-polling",
            room_name=room_name,
            greeting="Hello.",
            correlation_id=session_id,
        )
        await lk.room.create_room(api.CreateRoomRequest(name=room_name))
        await lk.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=agent_name, room=room_name, metadata=metadata.to_json())
        )
        if not await wait_for_agent(lk, room_name):
            return JSONResponse({"error": "the agent did not join within 15 s"}, status_code=504)
        await asyncio.sleep(GRACE_S)
        token = participant_token(api_key, api_secret, room_name=room_name, identity=f"user-{session_id}", ttl_s=600)
        return {"sessionId": session_id, "roomName": room_name, "token": token}

    return app
