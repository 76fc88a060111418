"""Endpoints for the agent, not for frontends: authorised by the session's agent credential, not an API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header

from services.api.credentials import CredentialError
from services.api.dependencies import AdmissionDep, CredentialsDep, FlowsDep, RepoDep
from services.api.errors import NotFoundError
from services.api.params import SessionId
from services.api.routes.flows import flow_out, require_usable
from services.api.schemas import ErrorBody, FlowInit
from services.api.session_core import session_exists_for

router = APIRouter(prefix="/internal", tags=["internal"])


@router.post(
    "/sessions/{session_id}/flow-init",
    response_model=FlowInit,
    responses={
        403: {"model": ErrorBody},
        404: {"model": ErrorBody},
        409: {"model": ErrorBody, "description": "the flow's stored definition cannot be used"},
        503: {"model": ErrorBody},
    },
)
async def flow_init(
    session_id: SessionId,
    credentials: CredentialsDep,
    repo: RepoDep,
    admission: AdmissionDep,
    flows: FlowsDep,
    authorization: Annotated[str | None, Header(description="Bearer <the session's agent credential>")] = None,
) -> FlowInit:
    """The flow the agent runs for this session: greeting, definition and agent settings.

    Answers while PostgreSQL is unreachable for a session requested recently; 503 (retry) when it cannot tell.
    """
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise CredentialError("missing agent credential: send 'Authorization: Bearer <agent credential>'")
    claims = credentials.verify(token.strip(), session_id)
    if not await session_exists_for(claims, repo, admission):
        raise NotFoundError(f"session {session_id!r} not found")
    # The session request's own flow cache: while PostgreSQL is unreachable, the flow it was requested with is
    # still served, so sessions requested during an outage reach ready.
    flow = await flows.get(claims.org_id, claims.flow_id)
    if flow is None:
        raise NotFoundError(f"flow {claims.flow_id!r} of session {session_id!r} not found")
    out = flow_out(require_usable(flow))
    return FlowInit(
        session_id=session_id,
        flow_id=flow.id,
        greeting=out.greeting,
        definition=out.definition,
        agent_settings=out.agent_settings,
    )
