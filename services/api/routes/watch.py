"""Watcher tokens: a monitor, supervisor or admin joins a session's room to receive its flow events."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException

from contracts.datachannel import FLOW_EVENTS_TOPIC
from contracts.keys import WATCHED_ROOM_TTL_S, watched_room_key
from contracts.status import TERMINAL, SessionStatus
from services.api.access import ApiKeyDep
from services.api.dependencies import AdmissionDep, RedisDep, RepoDep, TokensDep
from services.api.errors import NotFoundError
from services.api.params import SessionId
from services.api.schemas import ErrorBody, WatchRequest, WatchToken
from services.api.scopes import watch_scope
from services.api.session_core import find_session
from services.api.tokens import watcher_token

router = APIRouter(
    tags=["sessions"], responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 429: {"model": ErrorBody}}
)


@router.post(
    "/api/sessions/{session_id}/watch",
    response_model=WatchToken,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def watch_session(
    session_id: SessionId,
    body: WatchRequest,
    key: ApiKeyDep,
    repo: RepoDep,
    admission: AdmissionDep,
    issuer: TokensDep,
    redis: RedisDep,
) -> WatchToken:
    """A listen-only, hidden token for the session's room; flow events for ``role`` arrive on topic flow-events.

    Needs a secret key with the scope ``watch:<role>``."""
    org_id = key.require(watch_scope(body.role))
    session = await find_session(org_id, session_id, repo, admission)
    if session is None or not session.room_name:
        raise NotFoundError(f"session {session_id!r} not found")
    if SessionStatus(session.status) in TERMINAL:
        raise HTTPException(409, f"session {session_id!r} is {session.status}: there is nothing left to watch")
    identity = f"{body.role}-{uuid.uuid4().hex[:12]}"
    token = watcher_token(
        issuer.api_key,
        issuer.api_secret,
        room_name=session.room_name,
        identity=identity,
        role=body.role,
        ttl_s=issuer.ttl_s,
    )
    # Before the token exists: the relay then sends this room its flow events (it skips unwatched rooms).
    await redis.set(watched_room_key(session.room_name), "1", ex=WATCHED_ROOM_TTL_S)
    return WatchToken(
        session_id=session_id,
        room_name=session.room_name,
        identity=identity,
        role=body.role,
        token=token,
        livekit_url=issuer.livekit_url,
        topic=FLOW_EVENTS_TOPIC,
    )
