"""Session endpoints: request one (answers at once), read its status."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.dependencies import OrgDep, ResourcesDep
from services.api.errors import NotFoundError
from services.api.schemas import ErrorBody, SessionCreated, SessionOut
from services.api.sessions import request_session, session_from_request, session_from_row

router = APIRouter(tags=["sessions"])


@router.post(
    "/api/flows/{flow_id}/sessions",
    status_code=202,
    response_model=SessionCreated,
    responses={404: {"model": ErrorBody}, 503: {"model": ErrorBody}},
)
async def create_session(flow_id: str, resources: ResourcesDep, org_id: OrgDep) -> SessionCreated:
    """Request an agent session: returns the room and a token at once; readiness comes later."""
    flow = await resources.repo.get_flow(org_id, flow_id)
    if flow is None:
        raise NotFoundError(f"flow {flow_id!r} not found; create it with POST /api/flows")
    return await request_session(flow, resources.outbox, resources.issuer, resources.settings.ready_timeout_s)


@router.get("/api/sessions/{session_id}", response_model=SessionOut, responses={404: {"model": ErrorBody}})
async def get_session(session_id: str, resources: ResourcesDep, org_id: OrgDep) -> SessionOut:
    """Return a session's status and the time each stage was reached."""
    row = await resources.repo.get_session(org_id, session_id)
    if row is not None:
        return session_from_row(row)
    requested = await resources.outbox.snapshot(session_id)
    if requested is not None and requested.org_id == org_id:
        return session_from_request(requested)
    raise NotFoundError(f"session {session_id!r} not found")
