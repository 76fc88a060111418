"""Session endpoints (HTTP only): request one (answers at once), read its status, end it.

The rules behind them are in :mod:`services.api.session_core`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header

from contracts.events import SessionEndRequested
from contracts.status import TERMINAL, SessionStatus
from services.api.cached_flows import CachedFlows
from services.api.dependencies import AdmissionDep, FlowsDep, MintingDep, OrgDep, PublisherDep, RepoDep
from services.api.errors import NotFoundError
from services.api.repository import Flow
from services.api.schemas import ErrorBody, SessionCreated, SessionOut
from services.api.session_core import find_session, request_session

router = APIRouter(tags=["sessions"], responses={401: {"model": ErrorBody}})

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="a retried request with the same key returns the same session",
    ),
]

_CREATE_RESPONSES: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody},
    422: {"model": ErrorBody},
    429: {"model": ErrorBody, "description": "too many open sessions; see Retry-After"},
    503: {"model": ErrorBody},
}


async def _flow(flows: CachedFlows, org_id: str, flow_id: str) -> Flow:
    """The flow a session is requested for (404 when there is none)."""
    flow = await flows.get(org_id, flow_id)
    if flow is None:
        raise NotFoundError(f"flow {flow_id!r} not found; create it with POST /api/flows")
    return flow


@router.post(
    "/api/flows/{flow_id}/sessions", status_code=202, response_model=SessionCreated, responses=_CREATE_RESPONSES
)
async def create_session(
    flow_id: str,
    org_id: OrgDep,
    flows: FlowsDep,
    admission: AdmissionDep,
    minting: MintingDep,
    idempotency_key: IdempotencyKey = None,
) -> SessionCreated:
    """Request an agent session: returns the room and a token at once; readiness comes later."""
    flow = await _flow(flows, org_id, flow_id)
    return await request_session(flow, idempotency_key, admission, minting)


@router.post(
    "/api/flows/{flow_id}/test-audio", status_code=202, response_model=SessionCreated, responses=_CREATE_RESPONSES
)
async def create_test_audio_session(
    flow_id: str,
    org_id: OrgDep,
    flows: FlowsDep,
    admission: AdmissionDep,
    minting: MintingDep,
    idempotency_key: IdempotencyKey = None,
) -> SessionCreated:
    """Alias of ``POST /api/flows/{flow_id}/sessions`` (the route existing frontends call)."""
    return await create_session(flow_id, org_id, flows, admission, minting, idempotency_key)


@router.get("/api/sessions/{session_id}", response_model=SessionOut, responses={404: {"model": ErrorBody}})
async def get_session(session_id: str, org_id: OrgDep, repo: RepoDep, admission: AdmissionDep) -> SessionOut:
    """Return a session's status and the time each stage was reached."""
    session = await find_session(org_id, session_id, repo, admission)
    if session is None:
        raise NotFoundError(f"session {session_id!r} not found")
    return session


@router.delete(
    "/api/sessions/{session_id}", status_code=202, response_model=SessionOut, responses={404: {"model": ErrorBody}}
)
async def end_session(
    session_id: str, org_id: OrgDep, repo: RepoDep, admission: AdmissionDep, publisher: PublisherDep
) -> SessionOut:
    """End a session: answers at once; the status becomes ``ended`` and the room is cleaned up asynchronously."""
    session = await find_session(org_id, session_id, repo, admission)
    if session is None:
        raise NotFoundError(f"session {session_id!r} not found")
    if SessionStatus(session.status) not in TERMINAL:
        await publisher.publish(SessionEndRequested(session_id=session_id, reason="ended by request"))
    return session
