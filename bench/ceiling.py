"""The ceiling: a handler that only mints the participant token and does one XADD.

Nothing else a request could cost (auth, admission, validation of a flow) is done: what this serves per
second is the most a Python API process can do on the machine, and the API is compared with it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from redis.asyncio import Redis

from services.api.tokens import participant_token
from services.runtime.heap import freeze_start_up_heap

CEILING_STREAM = "bench.ceiling"


def create_ceiling_app() -> FastAPI:
    """The ceiling app; Redis is opened in the lifespan, from ``REDIS_URL``."""
    api_key = os.environ.get("LIVEKIT_API_KEY", "devkey")
    api_secret = os.environ.get("LIVEKIT_API_SECRET", "secret")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(os.environ["REDIS_URL"])
        app.state.redis = redis
        freeze_start_up_heap()  # as the API's process does: the comparison is of per-request work, not of GC pauses
        try:
            yield
        finally:
            await redis.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/api/flows/{flow_id}/sessions", status_code=202)
    async def create_session(flow_id: str, request: Request) -> dict[str, str]:
        """Mint the token, XADD one entry, answer."""
        session_id = uuid.uuid4().hex
        room_name = f"session-{session_id}"
        token = participant_token(api_key, api_secret, room_name=room_name, identity=f"user-{session_id}", ttl_s=600)
        redis: Redis = request.app.state.redis
        await redis.xadd(CEILING_STREAM, {"sessionId": session_id, "flowId": flow_id}, maxlen=10_000)
        return {"sessionId": session_id, "roomName": room_name, "token": token}

    return app
