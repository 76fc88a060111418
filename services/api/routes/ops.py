"""Operators' routes (secret keys with the ``ops`` scope, the key's organisation only): the start-up stages' p50/p95
over the last minutes, and whether the agent is in a session's room right now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request

from services.api.access import OpsOrgDep
from services.api.dependencies import AdmissionDep, RepoDep
from services.api.errors import NotFoundError
from services.api.livekit_room_reader import LiveKitRoomReader, presence_out
from services.api.params import SessionId
from services.api.presence import LiveKitUnavailableError, check_presence
from services.api.schemas import ErrorBody, PresenceOut, StageLatenciesOut, StageLatencyOut
from services.api.session_core import find_session
from services.runtime.stage_latency import MAX_MINUTES

router = APIRouter(
    tags=["ops"], responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 429: {"model": ErrorBody}}
)


@router.get("/api/ops/stages", response_model=StageLatenciesOut)
async def stage_latencies(
    org_id: OpsOrgDep,
    repo: RepoDep,
    minutes: Annotated[float, Query(gt=0, le=MAX_MINUTES, description="the window: sessions requested since")] = 15,
) -> StageLatenciesOut:
    """p50/p95 of each start-up stage (requested → dispatched → agent joined → listener subscribed → greeting →
    ready, and requested → ready) of the organisation's sessions requested in the last ``minutes``."""
    report = await repo.stage_latencies(org_id, minutes)
    stages = [StageLatencyOut(start=s.start, end=s.end, sessions=s.count, p50_ms=s.p50_ms, p95_ms=s.p95_ms)
              for s in report.stages]  # fmt: skip
    return StageLatenciesOut(minutes=report.minutes, sessions=report.sessions, ready=report.ready, stages=stages)


@router.get(
    "/api/sessions/{session_id}/presence",
    response_model=PresenceOut,
    responses={404: {"model": ErrorBody}, 503: {"model": ErrorBody, "description": "LiveKit did not answer"}},
)
async def presence(
    session_id: SessionId, request: Request, org_id: OpsOrgDep, repo: RepoDep, admission: AdmissionDep
) -> PresenceOut:
    """Is the agent in this session's room right now, since when, in which state? Asks LiveKit once and answers at
    once (the successor of the blocking ``waitForAgent``)."""
    session = await find_session(org_id, session_id, repo, admission)
    if session is None or session.room_name is None:  # no room name: only a stray event was recorded
        raise NotFoundError(f"session {session_id!r} not found")
    rooms: LiveKitRoomReader = request.app.state.room_reader
    try:
        found = await check_presence(session.room_name, rooms)
    except LiveKitUnavailableError as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from exc
    return presence_out(session_id, session.status, found)
